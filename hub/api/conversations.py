"""Agent REST endpoints on conversations (thin: parse, check access, call the service)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.attachments import MAX_REPLY_ATTACHMENTS, AttachmentRef, stored_attachments
from hub.api.auth import current_session
from hub.api.keys import ATTACHMENTS, CONVERSATIONS, OUTBOX, STORE
from hub.errors import InvalidRequest
from hub.http import Handler, endpoint, json_response, path_id, read_json, read_query
from hub.model import ConversationStatus
from hub.ports import ConversationFilter
from hub.services.receipts import agent_read
from hub.wire import CallOut, ContactOut, ConversationOut, HandoffOut, MessageOut, message_json


class ListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str | None = Field(None, description="comma-separated statuses")
    # An agent id has at most 18 digits (it fits a 64-bit database integer, as `path_id`).
    assignee: str | None = Field(None, pattern=r"^(me|none|\d{1,18})$")
    channel: str | None = Field(None, max_length=32)
    limit: int = Field(50, ge=1, le=200)


class ListResponse(BaseModel):
    conversations: list[ConversationOut]


class DetailResponse(BaseModel):
    conversation: ConversationOut
    contact: ContactOut
    messages: list[MessageOut]
    other_conversations: list[ConversationOut]
    handoff: HandoffOut | None  # what the bot collected before handing over, if it did
    call: CallOut | None  # the latest phone call (voice conversations): live or ended


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str  # may be "" when the reply carries attachments
    attachments: list[AttachmentRef] = Field(default=[], max_length=MAX_REPLY_ATTACHMENTS)


class MessageResponse(BaseModel):
    message: MessageOut


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent_id: int | None = Field(None, ge=1)


class ConversationResponse(BaseModel):
    conversation: ConversationOut


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _conversation_id(request: web.Request) -> int:
    return path_id(request, "a conversation id")


def _statuses(raw: str | None) -> tuple[ConversationStatus, ...]:
    if not raw:
        return ()
    try:
        return tuple(ConversationStatus(s.strip()) for s in raw.split(",") if s.strip())
    except ValueError:
        allowed = ", ".join(s.value for s in ConversationStatus)
        raise InvalidRequest(f"unknown status in {raw!r}; use {allowed}") from None


@endpoint(
    "GET",
    "/api/conversations",
    "List conversations, newest activity first",
    tags=("conversations",),
    query=ListQuery,
    response=ListResponse,
    errors=(400, 401, 422),
    auth="agent",
)
async def list_conversations(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    q = read_query(request, ListQuery)
    assignee_id = None
    if q.assignee == "me":
        assignee_id = session.agent.id
    elif q.assignee and q.assignee != "none":
        assignee_id = int(q.assignee)
    flt = ConversationFilter(
        status=_statuses(q.status),
        assignee_id=assignee_id,
        unassigned=q.assignee == "none",
        channel=q.channel,
        limit=q.limit,
    )
    return json_response({"conversations": await request.app[CONVERSATIONS].summaries(flt)})


@endpoint(
    "GET",
    "/api/conversations/{id}",
    "A conversation with its messages and the contact's others",
    tags=("conversations",),
    response=DetailResponse,
    errors=(400, 401, 404),
    auth="agent",
)
async def get_conversation(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    detail = await request.app[CONVERSATIONS].detail(_conversation_id(request))
    return json_response(
        {
            "conversation": detail.conversation,
            "contact": detail.contact,
            "messages": detail.messages,
            "other_conversations": detail.other_conversations,
            "handoff": detail.handoff,
            "call": detail.call,
        }
    )


@endpoint(
    "POST",
    "/api/conversations/{id}/messages",
    "Reply to the customer on the conversation's channel",
    tags=("conversations",),
    body=ReplyRequest,
    response=MessageResponse,
    status=201,
    errors=(400, 401, 403, 404, 413, 422),
    auth="agent",
)
async def post_message(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    conv_id = _conversation_id(request)
    req = await read_json(request, ReplyRequest)
    files = stored_attachments(request.app[ATTACHMENTS], req.attachments)
    msg = await request.app[CONVERSATIONS].reply(conv_id, session.agent.id, req.text, files)
    return json_response({"message": message_json(msg)}, status=201)


@endpoint(
    "POST",
    "/api/conversations/{id}/messages/{message_id}/resend",
    "Send a failed reply again (queued now, retried for the channel's lifetime)",
    tags=("conversations",),
    body=Empty,
    response=MessageResponse,
    status=202,
    errors=(400, 401, 403, 404, 409),
    auth="agent",
)
async def resend_message(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    conv_id = _conversation_id(request)
    message_id = path_id(request, "a message id", "message_id")
    await read_json(request, Empty)
    msg = await request.app[OUTBOX].resend(conv_id, message_id, session.agent.id)
    return json_response({"message": message_json(msg)}, status=202)


@endpoint(
    "POST",
    "/api/conversations/{id}/assign",
    "Assign to an agent (default: yourself)",
    tags=("conversations",),
    body=AssignRequest,
    response=ConversationResponse,
    errors=(400, 401, 403, 404, 409, 422),
    auth="agent",
)
async def assign(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    conv_id = _conversation_id(request)
    req = await read_json(request, AssignRequest)
    service = request.app[CONVERSATIONS]
    summary = await service.assign(conv_id, req.agent_id or session.agent.id, session.agent.id)
    return json_response({"conversation": summary})


def _lifecycle(action: str, summary: str) -> Handler:
    """resolve / reopen: no body, the conversation's new state back."""

    @endpoint(
        "POST",
        f"/api/conversations/{{id}}/{action}",
        summary,
        tags=("conversations",),
        body=Empty,
        response=ConversationResponse,
        errors=(400, 401, 403, 404, 409),
        auth="agent",
    )
    async def handler(request: web.Request) -> web.StreamResponse:
        session = await current_session(request)
        conv_id = _conversation_id(request)
        await read_json(request, Empty)
        service = request.app[CONVERSATIONS]
        change = getattr(service, action)
        return json_response({"conversation": await change(conv_id, session.agent.id)})

    return handler


resolve = _lifecycle("resolve", "Mark resolved")
reopen = _lifecycle("reopen", "Reopen a resolved or closed conversation")


class ReadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    up_to: int = Field(ge=1, le=2**63 - 1, description="the newest message id the agent saw")


@endpoint(
    "POST",
    "/api/conversations/{id}/read",
    "Mark the customer's messages up to `up_to` read (the web chat widget shows them Seen)",
    tags=("conversations",),
    body=ReadRequest,
    status=204,
    errors=(400, 401, 403, 404, 422),
    auth="agent",
)
async def mark_read(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    conv_id = _conversation_id(request)
    req = await read_json(request, ReadRequest)
    await agent_read(request.app[STORE], conv_id, req.up_to, session.agent.id)
    return web.Response(status=204)


HANDLERS: list[Handler] = [
    list_conversations,
    get_conversation,
    post_message,
    resend_message,
    assign,
    resolve,
    reopen,
    mark_read,
]
