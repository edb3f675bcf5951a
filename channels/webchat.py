"""Web chat: the embeddable widget's HTTP + websocket endpoints (docs/webchat-protocol.md).

The session token is the customer's only credential; it is stored hashed. Messages are acked
only after the hub stored them; a resend with the same client_id is acked with the same id.
Replies reach the customer's sockets through the event bus, so a customer connected to one
hub process hears an agent who answered on another.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Literal

import orjson
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub import formatting
from hub.errors import HubError, InvalidRequest, InvalidToken, NotFound
from hub.http import (
    Handler,
    KeyedLimit,
    SocketFeed,
    TokenBucket,
    attachment_response,
    endpoint,
    json_response,
    path_id,
    read_json,
    read_query,
    read_upload,
)
from hub.model import (
    AuthorKind,
    Conversation,
    DeliveryState,
    Direction,
    EventKind,
    Identity,
    InboundMessage,
    Message,
)
from hub.ports import (
    BusEnvelope,
    ChannelContext,
    SendResult,
    Store,
    UnitOfWork,
    WebchatSession,
)
from hub.services.agents import token_hash
from hub.services.conversations import clean_text, do_open_conversation
from hub.services.receipts import customer_saw

log = logging.getLogger(__name__)
MAX_FRAME = 64 * 1024
# aiohttp closes the socket (1009, no reason) on a frame over its limit, before we can answer;
# up to this size a frame over MAX_FRAME gets a `frame_too_large` error frame instead.
READ_LIMIT = 1024 * 1024
HISTORY_LIMIT = 5000  # newest messages returned on resume
MAX_FILES_PER_MESSAGE = 5
# Sending files is slower and heavier than typing: a few a minute, with a burst for a batch.
FILES_PER_MINUTE = 10
FILES_BURST = 10


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Any non-empty string: a wrong token of any length is a 401 invalid_token.
    token: str | None = Field(None, min_length=1, max_length=128)
    name: str | None = Field(None, min_length=1, max_length=100)
    language: Literal["en", "zh-CN"] | None = None


class SessionResponse(BaseModel):
    token: str
    conversation_id: int
    max_text_chars: int = Field(description="the longest message text the hub accepts")


class TokenQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128)


class FileOut(BaseModel):
    """A file sent with a message. `url` is relative to the hub and needs the session's
    token added as `?token=…` (it is not put in the url, which the history hands around)."""

    filename: str
    content_type: str
    size: int
    url: str


class HistoryMessage(BaseModel):
    message_id: int
    author: Literal["customer", "bot", "agent", "system"]
    author_name: str | None
    text: str
    html: str | None  # sanitised HTML of a bot or agent message (Markdown); None: plain text
    created_at: str
    client_id: str | None
    attachments: list[FileOut]
    # `read` on a customer's message: an agent has seen it (the widget shows "Seen").
    delivery_state: Literal["queued", "sent", "delivered", "read", "failed"]


class HistoryResponse(BaseModel):
    conversation_id: int
    status: str
    messages: list[HistoryMessage]


class FileMessageQuery(TokenQuery):
    client_id: str = Field(min_length=1, max_length=64)


class FileAck(BaseModel):
    client_id: str
    message_id: int


class MessageFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["message"]
    client_id: str = Field(min_length=1, max_length=64)
    text: str


class ReceiptFrame(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["delivered", "read"]
    up_to: int = Field(ge=1, le=2**63 - 1)


async def session_of(store: Store, token: str) -> WebchatSession:
    """The widget session a token belongs to, or InvalidToken (401). For every endpoint the
    widget calls with its token (the voice channel's WebRTC calls too)."""
    hashed = token_hash(token)
    found = await store.read(lambda uow: uow.webchat_session(hashed))
    if found is None:
        raise InvalidToken("unknown or expired web chat token")
    return found


def _files(message_id: int, files: Iterable[tuple[str, str, int]]) -> list[FileOut]:
    return [
        FileOut(
            filename=name,
            content_type=content_type,
            size=size,
            url=f"/api/webchat/attachments/{message_id}/{index}",
        )
        for index, (name, content_type, size) in enumerate(files)
    ]


def _client_id(session: WebchatSession, channel_message_id: str | None) -> str | None:
    prefix = f"{session.id}:"
    if channel_message_id and channel_message_id.startswith(prefix):
        return channel_message_id[len(prefix) :]
    return None


class WebchatChannel:
    """The `webchat` channel adapter."""

    name: ClassVar[str] = "webchat"

    def __init__(self, ctx: ChannelContext):
        self.ctx = ctx
        self.inbox: str = ctx.options.get("inbox", ctx.default_inbox)
        self.rate = float(ctx.options.get("rate_per_s", 20))
        self.burst = float(ctx.options.get("burst", 60))
        self._sockets: dict[int, set[SocketFeed]] = defaultdict(set)
        self._file_limit = KeyedLimit(FILES_PER_MINUTE / 60, FILES_BURST)
        self._unsubscribe: Any = None

    # --- Channel port -------------------------------------------------------------------------

    async def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe(self._on_bus)

    async def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()
        for feeds in list(self._sockets.values()):
            for feed in list(feeds):
                await feed.ws.close(code=1001, message=b"server shutting down")

    async def send(self, conversation: Conversation, message: Message) -> SendResult:
        # Stored and published: every hub process pushes it to the customer's open sockets, and
        # a customer who is offline reads it in the history on return.
        return SendResult(DeliveryState.SENT)

    # --- HTTP ---------------------------------------------------------------------------------

    def handlers(self) -> Sequence[Handler]:
        return [
            self.create_session,
            self.history,
            self.websocket,
            self.send_files,
            self.attachment,
        ]

    async def _session(self, token: str) -> WebchatSession:
        return await session_of(self.ctx.store, token)

    @endpoint(
        "POST",
        "/api/webchat/sessions",
        "Start or resume a web chat session",
        tags=("webchat",),
        body=SessionRequest,
        response=SessionResponse,
        status=201,
        errors=(400, 401, 422),
    )
    async def create_session(self, request: web.Request) -> web.StreamResponse:
        req = await read_json(request, SessionRequest)
        if req.token:
            found = await self._session(req.token)
            return json_response(
                SessionResponse(
                    token=req.token,
                    conversation_id=found.conversation_id,
                    max_text_chars=self.ctx.max_text_chars,
                )
            )
        token = secrets.token_urlsafe(32)
        hashed = token_hash(token)
        visitor = "visitor-" + hashed[:20]
        name = req.name or f"Visitor {hashed[:4].upper()}"

        status = self.ctx.sink.opening_status(self.inbox)

        def run(uow: UnitOfWork) -> WebchatSession:
            conv = do_open_conversation(
                uow, self.name, self.inbox, visitor, name, req.language, status
            )
            return uow.create_webchat_session(hashed, conv.contact_id, conv.id, visitor)

        session = await self.ctx.store.write(run)
        return json_response(
            SessionResponse(
                token=token,
                conversation_id=session.conversation_id,
                max_text_chars=self.ctx.max_text_chars,
            ),
            201,
        )

    @endpoint(
        "GET",
        "/api/webchat/history",
        "The session's conversation, oldest message first",
        tags=("webchat",),
        query=TokenQuery,
        response=HistoryResponse,
        errors=(401, 422),
    )
    async def history(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(read_query(request, TokenQuery).token)

        def run(uow: UnitOfWork) -> HistoryResponse:
            conv = uow.conversation(session.conversation_id)
            assert conv is not None
            messages = [
                HistoryMessage(
                    message_id=m.id,
                    author=m.author_kind.value,
                    author_name=m.author_name,
                    text=m.text,
                    html=formatting.message_html(m.text, m.format),
                    created_at=m.created_at.isoformat(),
                    client_id=_client_id(session, m.channel_message_id),
                    attachments=_files(
                        m.id, ((a.filename, a.content_type, a.size) for a in m.attachments)
                    ),
                    delivery_state=m.delivery_state.value,
                )
                for m in uow.messages(conv.id, limit=HISTORY_LIMIT)
            ]
            return HistoryResponse(
                conversation_id=conv.id, status=conv.status.value, messages=messages
            )

        return json_response(await self.ctx.store.read(run))

    @endpoint(
        "POST",
        "/api/webchat/messages",
        "Send files (with an optional `text` caption) as one customer message",
        tags=("webchat",),
        query=FileMessageQuery,
        response=FileAck,
        status=201,
        errors=(400, 401, 413, 422, 429),
        upload=True,
        form_fields=("text",),
    )
    async def send_files(self, request: web.Request) -> web.StreamResponse:
        q = read_query(request, FileMessageQuery)
        session = await self._session(q.token)
        if not self._file_limit.take(session.id):
            raise HubError("too many files; try again in a minute", code="rate_limited", status=429)
        store = self.ctx.attachments
        files, fields = await read_upload(
            request, max_bytes=store.max_bytes, max_files=MAX_FILES_PER_MESSAGE, fields=("text",)
        )
        if not files:
            raise InvalidRequest("the form has no `file` part", code="no_file")
        # Checked before any file is saved, so a refused caption leaves no bytes behind.
        text = clean_text(fields.get("text", ""), self.ctx.max_text_chars, allow_empty=True)
        saved = tuple([await store.save(f.data, f.filename, f.content_type) for f in files])
        # The same channel message id as a websocket message with this client_id: a resend
        # after a lost answer is stored once (the files are content-addressed, stored once too).
        inbound = InboundMessage(
            channel=self.name,
            inbox=self.inbox,
            sender=Identity(self.name, session.address),
            text=text,
            channel_message_id=f"{session.id}:{q.client_id}",
            conversation_id=session.conversation_id,
            attachments=saved,
        )
        stored = await self.ctx.sink.receive(inbound)
        return json_response(FileAck(client_id=q.client_id, message_id=stored.id), 201)

    @endpoint(
        "GET",
        "/api/webchat/attachments/{message_id}/{index}",
        "Download a file sent in the session's conversation (the `url` of a message's file)",
        tags=("webchat",),
        query=TokenQuery,
        errors=(400, 401, 404, 422),
    )
    async def attachment(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(read_query(request, TokenQuery).token)
        message_id = path_id(request, "a message id", "message_id")
        index = path_id(request, "a file index", "index")
        message = await self.ctx.store.read(lambda uow: uow.message(message_id))
        # Another conversation's message is answered exactly like a missing one.
        if (
            message is None
            or message.conversation_id != session.conversation_id
            or index >= len(message.attachments)
        ):
            raise NotFound("no such file in this conversation", code="unknown_attachment")
        a = message.attachments[index]
        return attachment_response(
            self.ctx.attachments.path(a.storage_key), a.filename, a.content_type
        )

    @endpoint(
        "GET",
        "/api/webchat/ws",
        "Customer websocket (docs/webchat-protocol.md)",
        tags=("webchat",),
        query=TokenQuery,
        errors=(401, 422),
        websocket=True,
    )
    async def websocket(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(read_query(request, TokenQuery).token)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=READ_LIMIT)
        await ws.prepare(request)
        feed = SocketFeed(ws)
        self._sockets[session.conversation_id].add(feed)
        bucket = TokenBucket(self.rate, self.burst)
        receipts: dict[DeliveryState, int] = {}  # the highest up_to stored, per kind
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and _too_large(msg.data):
                    await feed.reply(
                        _error("frame_too_large", f"frames are limited to {MAX_FRAME} bytes")
                    )
                elif msg.type == WSMsgType.TEXT:
                    await self._on_frame(session, feed, bucket, receipts, msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await feed.reply(_error("invalid_frame", "send JSON text frames"))
                elif msg.type == WSMsgType.ERROR:
                    log.info("web chat socket error: %s", ws.exception())
        finally:
            feeds = self._sockets.get(session.conversation_id)
            if feeds is not None:
                feeds.discard(feed)
                if not feeds:
                    del self._sockets[session.conversation_id]
            await feed.close()
        return ws

    # --- frames -------------------------------------------------------------------------------

    async def _on_frame(
        self,
        session: WebchatSession,
        feed: SocketFeed,
        bucket: TokenBucket,
        receipts: dict[DeliveryState, int],
        data: str,
    ) -> None:
        try:
            frame = orjson.loads(data)
        except ValueError:
            await feed.reply(_error("malformed_json", "the frame is not JSON"))
            return
        if not isinstance(frame, dict):
            await feed.reply(_error("malformed_json", "the frame must be a JSON object"))
            return
        kind = frame.get("type")
        if kind == "typing":
            self.ctx.bus.publish(self._typing(session.conversation_id, AuthorKind.CUSTOMER))
        elif kind == "message":
            await self._on_message(session, feed, bucket, frame)
        elif kind in ("delivered", "read"):
            await self._on_receipt(session, feed, bucket, receipts, frame)
        else:
            await feed.reply(_error("unknown_type", f"unknown frame type {kind!r}"))

    async def _on_message(
        self, session: WebchatSession, feed: SocketFeed, bucket: TokenBucket, frame: dict[str, Any]
    ) -> None:
        client_id = frame.get("client_id") if isinstance(frame.get("client_id"), str) else None
        try:
            parsed = MessageFrame.model_validate(frame)
        except ValidationError as exc:
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            await feed.reply(_error("invalid_frame", f"missing or invalid: {where}", client_id))
            return
        if not bucket.take():
            await feed.reply(
                _error("rate_limited", "too many messages; slow down", parsed.client_id)
            )
            return
        inbound = InboundMessage(
            channel=self.name,
            inbox=self.inbox,
            sender=Identity(self.name, session.address),
            text=parsed.text,
            channel_message_id=f"{session.id}:{parsed.client_id}",
            conversation_id=session.conversation_id,
        )
        try:
            stored = await self.ctx.sink.receive(inbound)
        except HubError as exc:
            await feed.reply(_error(exc.code, exc.detail, parsed.client_id))
            return
        await feed.reply({"type": "ack", "client_id": parsed.client_id, "message_id": stored.id})

    async def _on_receipt(
        self,
        session: WebchatSession,
        feed: SocketFeed,
        bucket: TokenBucket,
        receipts: dict[DeliveryState, int],
        frame: dict[str, Any],
    ) -> None:
        """The widget got (`delivered`) or showed (`read`) the replies up to `up_to`: one write
        for all of them, and none for a receipt that adds nothing on this socket."""
        try:
            parsed = ReceiptFrame.model_validate(frame)
        except ValidationError:
            await feed.reply(_error("invalid_frame", "a receipt needs an integer `up_to`"))
            return
        state = DeliveryState(parsed.type)
        if parsed.up_to <= receipts.get(state, 0):
            return
        if not bucket.take():  # a later receipt covers this one
            return
        receipts[state] = parsed.up_to
        if state is DeliveryState.READ:
            receipts[DeliveryState.DELIVERED] = max(
                parsed.up_to, receipts.get(DeliveryState.DELIVERED, 0)
            )
        await customer_saw(self.ctx.store, session.conversation_id, parsed.up_to, state)

    def _typing(self, conversation_id: int, author: AuthorKind) -> BusEnvelope:
        return {
            "kind": "typing",
            "conversation_id": conversation_id,
            "data": {"author": author.value},
            "origin": self.ctx.bus.node_id,
        }

    # --- bus ----------------------------------------------------------------------------------

    def _on_bus(self, envelope: BusEnvelope) -> None:
        conv_id = envelope["conversation_id"]
        if conv_id is None or conv_id not in self._sockets:
            return
        if envelope["kind"] == EventKind.MESSAGE_CREATED.value:
            m = envelope["data"]["message"]
            if m["direction"] != Direction.OUTBOUND.value:
                return
            frame = {
                "type": "message",
                "message_id": m["id"],
                "author": m["author"],
                "author_name": m.get("author_name"),
                "text": m["text"],
                "html": m.get("html"),
                "created_at": m["created_at"],
                "attachments": [
                    f.model_dump()
                    for f in _files(
                        m["id"],
                        ((a["filename"], a["content_type"], a["size"]) for a in m["attachments"]),
                    )
                ],
            }
            if m.get("choices"):  # quick replies (bot questions): buttons in the widget
                frame["choices"] = m["choices"]
        elif envelope["kind"] == EventKind.MESSAGE_DELIVERY.value:
            m = envelope["data"]["message"]
            if m["direction"] != Direction.INBOUND.value or m["delivery_state"] != "read":
                return
            # The customer's own message was seen by an agent.
            frame = {"type": "delivery", "message_id": m["id"], "state": "read"}
        elif envelope["kind"] == "typing" and envelope["data"].get("author") != "customer":
            frame = {"type": "typing", "author": envelope["data"].get("author", "agent")}
        else:
            return
        for feed in list(self._sockets.get(conv_id, ())):
            feed.send(frame)


def _too_large(data: str) -> bool:
    # A character is at most 4 bytes in UTF-8: most frames need no encoding to be measured.
    return len(data) > MAX_FRAME // 4 and len(data.encode()) > MAX_FRAME


def _error(code: str, detail: str, client_id: str | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame
