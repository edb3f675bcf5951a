"""The Twilio Media Streams transport (docs/phone.md): a Twilio (or Telnyx TeXML) number
whose voice webhook is `POST /api/phone/twilio/voice` gets TwiML that connects the call's audio
to the websocket `GET /api/phone/twilio/stream`; each stream becomes a `TwilioSession` handed
to the call controller.

The webhook signs a short-lived token for the call into the TwiML; a stream whose `start`
does not carry a valid one for its own CallSid is refused, so nobody can open a stream and
inject a call without going through the (signature-checked) webhook.

A stream that misbehaves (not JSON, an unknown event, no `start`, another codec than 8 kHz
μ-law, an oversized frame, silence past the idle timeout) or vanishes ends its own call with
one log line naming it; every other call goes on.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, ClassVar

import phonenumbers
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from channels.phone.twilio_session import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_PROTOCOL,
    Clock,
    LoopClock,
    TwilioSession,
)
from channels.phone.twilio_wire import (
    MULAW_ENCODINGS,
    Connected,
    DtmfEvent,
    ErrorEvent,
    MarkEvent,
    Media,
    Start,
    Stop,
    StreamTokens,
    WireError,
    connect_twiml,
    decode_payload,
    parse_event,
    reject_twiml,
    signature_ok,
)
from hub.calls.audio import ulaw_to_pcm
from hub.calls.media import CallHandler, CallInfo
from hub.config import channel_options
from hub.errors import Forbidden, InvalidRequest
from hub.http import Handler, endpoint, read_body
from hub.ports import ChannelContext

log = logging.getLogger(__name__)

VOICE_PATH = "/api/phone/twilio/voice"
STREAM_PATH = "/api/phone/twilio/stream"
MAX_WEBHOOK_BODY = 64 * 1024  # Twilio's voice webhook form is a couple of kilobytes
# A 20 ms media event is about 350 bytes and `start` well under 4 KiB; nothing Twilio sends
# comes near this. aiohttp itself drops the socket past READ_LIMIT.
MAX_FRAME = 16 * 1024
READ_LIMIT = 256 * 1024
TOKEN_PARAMETER = "token"


class TwilioOptions(BaseModel):
    """`[channels.voice.twilio]`."""

    model_config = ConfigDict(extra="forbid")
    # The account's auth token: when set, the voice webhook's X-Twilio-Signature is checked.
    auth_token: SecretStr | None = Field(None, min_length=16)
    # Signs the stream tokens; needed when several hub processes share the number and no
    # auth_token is set (otherwise each process signs with a random key of its own).
    stream_secret: SecretStr | None = Field(None, min_length=16)
    max_calls: int = Field(50, ge=1, le=10_000)
    idle_timeout_s: float = Field(30, gt=0, le=3600)
    token_ttl_s: float = Field(60, gt=0, le=3600)
    # Region for numbers Twilio sends without a country code (ISO 3166, e.g. "CN").
    region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    # How long a handler may run on after its call ended before it is cancelled.
    handler_grace_s: float = Field(10, gt=0, le=600)


class TwilioTransport:
    """Answers Twilio Media Streams calls (see the module docstring)."""

    name: ClassVar[str] = "twilio"

    def __init__(self, options: dict[str, Any], ctx: ChannelContext, *, clock: Clock | None = None):
        self.options = channel_options(TwilioOptions, options, "voice.twilio")
        self.ctx = ctx
        self.clock: Clock = clock or LoopClock()
        secret = self.options.stream_secret or self.options.auth_token
        if self.options.auth_token is None:
            log.warning("channels.voice.twilio: no auth_token; the voice webhook is not verified")
        if secret is None:
            log.warning(
                "channels.voice.twilio: no stream_secret or auth_token; stream tokens are"
                " signed with a key of this process only (one hub process)"
            )
        key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        self.tokens = StreamTokens(key, self.options.token_ttl_s)
        self._handler: CallHandler | None = None
        self._calls: dict[str, tuple[TwilioSession, asyncio.Task[None]]] = {}
        self._call_sids: set[str] = set()

    # --- CallTransport ------------------------------------------------------------------------

    def handlers(self) -> Sequence[Handler]:
        return [self.voice, self.stream]

    async def start(self, handler: CallHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        calls = list(self._calls.values())
        for session, _ in calls:
            session.end("hub", "the hub is shutting down", CLOSE_GOING_AWAY)
        await self._settle([task for _, task in calls])

    @property
    def live_calls(self) -> int:
        return len(self._calls)

    # --- the voice webhook --------------------------------------------------------------------

    @endpoint(
        "POST",
        VOICE_PATH,
        "Twilio / Telnyx voice webhook: TwiML connecting the call's media stream",
        tags=("phone",),
        errors=(400, 403, 413),
    )
    async def voice(self, request: web.Request) -> web.StreamResponse:
        raw = await read_body(request, MAX_WEBHOOK_BODY)
        try:
            form = urllib.parse.parse_qsl(
                raw.decode(), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=200
            )
        except (UnicodeDecodeError, ValueError):
            raise InvalidRequest("the body is not a url-encoded form") from None
        if self.options.auth_token is not None:
            token = self.options.auth_token.get_secret_value()
            urls = {self.ctx.public_url.rstrip("/") + request.path_qs, str(request.url)}
            sent = request.headers.get("X-Twilio-Signature", "")
            if not signature_ok(token, urls, form, sent):
                log.warning("twilio voice webhook: bad X-Twilio-Signature from %s", request.remote)
                raise Forbidden("X-Twilio-Signature does not match", code="bad_signature")
        fields = dict(form)
        call_sid = fields.get("CallSid", "")
        if not call_sid or len(call_sid) > 64:
            raise InvalidRequest("the form has no CallSid", code="no_call_sid")
        if self._handler is None or len(self._calls) >= self.options.max_calls:
            log.warning("twilio call %s refused: %s", call_sid, "busy" if self._handler else "off")
            return _twiml(reject_twiml("busy"))
        parameters = {
            "From": fields.get("From", "")[:64],
            "To": fields.get("To", "")[:64],
            TOKEN_PARAMETER: self.tokens.mint(call_sid, time.time()),
        }
        return _twiml(connect_twiml(self._stream_url(), parameters))

    def _stream_url(self) -> str:
        base = urllib.parse.urlsplit(self.ctx.public_url)
        scheme = "wss" if base.scheme == "https" else "ws"
        return urllib.parse.urlunsplit(
            (scheme, base.netloc, base.path.rstrip("/") + STREAM_PATH, "", "")
        )

    # --- the media stream ---------------------------------------------------------------------

    @endpoint(
        "GET",
        STREAM_PATH,
        "Twilio Media Streams websocket (docs/phone.md)",
        tags=("phone",),
        websocket=True,
    )
    async def stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=READ_LIMIT)
        await ws.prepare(request)
        peer = request.remote or "?"
        guard = asyncio.create_task(self._await_start(ws, peer))
        session: TwilioSession | None = None
        task: asyncio.Task[None] | None = None
        why = "the websocket closed"
        try:
            async for msg in ws:
                problem = _frame_problem(msg)
                if problem:
                    why = problem
                    break
                try:
                    event = parse_event(msg.data)
                    if session is None:
                        if isinstance(event, Connected):
                            continue
                        if not isinstance(event, Start):
                            raise WireError(f"{event.event!r} before start")
                        guard.cancel()
                        opened = self._open(ws, event)
                        if isinstance(opened, str):
                            why = f"refused: {opened}"
                            break
                        session = opened
                        task = asyncio.create_task(self._run(session))
                        self._calls[session.info.call_id] = (session, task)
                    elif not self._feed(session, event):
                        break
                except WireError as exc:
                    why = f"garbled frame: {exc}"
                    break
        finally:
            guard.cancel()
            if session is None:
                log.warning("twilio stream from %s ended before its call began: %s", peer, why)
                await ws.close(code=CLOSE_PROTOCOL, message=why.encode()[:120])
            else:
                session.end("error", why, CLOSE_PROTOCOL)  # nothing when it ended already
                await session.closed()
                if task is not None:
                    await self._settle([task])
        return ws

    async def _await_start(self, ws: web.WebSocketResponse, peer: str) -> None:
        """Close a stream that has not sent `start` within the idle timeout."""
        deadline = self.clock.now() + self.options.idle_timeout_s
        while self.clock.now() < deadline:
            await self.clock.sleep_until(deadline)
        log.warning(
            "twilio stream from %s sent no start in %g s", peer, self.options.idle_timeout_s
        )
        await ws.close(code=CLOSE_PROTOCOL, message=b"no start event")

    def _open(self, ws: web.WebSocketResponse, start: Start) -> TwilioSession | str:
        """The call a `start` event begins, or why it must not be answered."""
        info = start.start
        sid = start.sid
        params = dict(info.custom_parameters)
        token = params.pop(TOKEN_PARAMETER, "")
        fmt = info.media_format
        refusal = None
        if not sid:
            refusal = "start has no streamSid"
        elif self._handler is None:
            refusal = "the hub is not answering calls"
        elif not self.tokens.valid(token, info.call_sid, time.time()):
            refusal = "no valid stream token for the call (not connected by our voice webhook?)"
        elif info.call_sid in self._call_sids:
            refusal = f"call {info.call_sid} has a stream already"
        elif fmt.encoding not in MULAW_ENCODINGS or fmt.sample_rate != 8000 or fmt.channels != 1:
            refusal = (
                f"unsupported media format {fmt.encoding} {fmt.sample_rate} Hz"
                f" x{fmt.channels}; only 8 kHz mono μ-law"
            )
        elif len(self._calls) >= self.options.max_calls:
            refusal = f"all {self.options.max_calls} lines are busy"
        if refusal or not sid:
            return refusal or "start has no streamSid"
        call = CallInfo(
            call_id=f"twilio:{sid}",
            transport="twilio",
            caller=self._number(params.get("From", "")),
            dialled=self._number(params.get("To", "")),
            sample_rate=8000,
            params=params,
        )
        session = TwilioSession(
            call, sid, info.call_sid, ws, self.clock, self.options.idle_timeout_s
        )
        self._call_sids.add(info.call_sid)
        log.info("twilio call %s answered: %s -> %s", call.call_id, call.caller, call.dialled)
        return session

    def _feed(self, session: TwilioSession, event: object) -> bool:
        """Hand one event of a live call to its session; False when the call is over."""
        if isinstance(event, Media):
            if event.media.track in ("inbound", "inbound_track"):
                session.audio(ulaw_to_pcm(decode_payload(event)))
        elif isinstance(event, DtmfEvent):
            session.dtmf(event.dtmf.digit)
        elif isinstance(event, MarkEvent):
            session.mark(event.mark.name)
        elif isinstance(event, Stop):
            session.end("caller", "stop", CLOSE_NORMAL)
            return False
        elif isinstance(event, ErrorEvent):
            session.end("error", f"the stream reported an error: {event.payload}", CLOSE_NORMAL)
            return False
        elif isinstance(event, Start):
            raise WireError("a second start")
        return session.ended is None

    async def _run(self, session: TwilioSession) -> None:
        """The call's task: the handler runs the call; the call ends when it returns."""
        call_id = session.info.call_id
        try:
            if self._handler is not None:
                await self._handler(session)
        except asyncio.CancelledError:
            log.warning("call %s: its handler was cancelled", call_id)
            raise
        except Exception:
            log.exception("call %s: the call handler failed", call_id)
        finally:
            await session.hang_up()
            self._calls.pop(call_id, None)
            self._call_sids.discard(session.call_sid)

    async def _settle(self, tasks: list[asyncio.Task[None]]) -> None:
        """Give handlers `handler_grace_s` to see their HangUp and return; cancel the rest so
        that no call task outlives its socket."""
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=self.options.handler_grace_s)
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _number(self, raw: str) -> str:
        """E.164 where the number parses, else as sent (a `client:alice` or SIP address)."""
        try:
            number = phonenumbers.parse(raw, self.options.region)
        except phonenumbers.NumberParseException:
            return raw
        if not phonenumbers.is_possible_number(number):
            return raw
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _frame_problem(msg: Any) -> str | None:
    """Why a websocket message cannot be a Media Streams event, or None."""
    if msg.type == WSMsgType.TEXT:
        if len(msg.data) > MAX_FRAME:
            return f"oversized frame: {len(msg.data)} bytes over the {MAX_FRAME}-byte limit"
        return None
    if msg.type == WSMsgType.BINARY:
        return "a binary frame (Media Streams sends JSON text)"
    return f"websocket error: {msg.data}"


def _twiml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")
