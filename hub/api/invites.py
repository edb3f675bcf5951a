"""Invites: links an agent hands a known contact to continue on another channel as the same
contact (a Telegram `/start` deep link, docs/telegram.md)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import current_session
from hub.api.keys import OUTBOX
from hub.errors import NotFound
from hub.http import Handler, endpoint, json_response, path_id, read_json
from hub.ports import InvitingChannel


class InviteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(min_length=1, max_length=32)
    inbox: str | None = Field(None, min_length=1, max_length=64)  # default: the channel's first


class InviteOut(BaseModel):
    channel: str
    inbox: str
    url: str
    expires_at: datetime


class InviteResponse(BaseModel):
    invite: InviteOut


class InviteChannels(BaseModel):
    channels: list[str]


@endpoint(
    "GET",
    "/api/invites/channels",
    "The channels a contact can be invited to (the inbox offers an invite button for each)",
    tags=("contacts",),
    response=InviteChannels,
    errors=(401,),
    auth="agent",
)
async def invite_channels(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    channels = request.app[OUTBOX].channels
    names = sorted(name for name, ch in channels.items() if isinstance(ch, InvitingChannel))
    return json_response(InviteChannels(channels=names))


@endpoint(
    "POST",
    "/api/contacts/{id}/invites",
    "A link that brings the contact to another channel as the same contact",
    tags=("contacts",),
    body=InviteRequest,
    response=InviteResponse,
    status=201,
    errors=(400, 401, 403, 404, 422, 503),
    auth="agent",
)
async def create_invite(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    contact_id = path_id(request, "a contact id")
    req = await read_json(request, InviteRequest)
    channel = request.app[OUTBOX].channels.get(req.channel)
    if not isinstance(channel, InvitingChannel):
        raise NotFound(
            f"channel {req.channel!r} is not enabled or has no invites", code="no_invites"
        )
    invite = await channel.invite(contact_id, req.inbox)
    out = InviteOut(
        channel=invite.channel, inbox=invite.inbox, url=invite.url, expires_at=invite.expires_at
    )
    return json_response(InviteResponse(invite=out), 201)


HANDLERS: list[Handler] = [invite_channels, create_invite]
