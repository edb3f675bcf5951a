"""JSON shapes of domain values (docs/api.md), defined once as pydantic models.

Event payloads, bus envelopes, API responses and the OpenAPI document all come from these.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from hub.formatting import message_html
from hub.model import Agent, Attachment, Contact, Conversation, Message


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class AttachmentOut(_Out):
    filename: str
    content_type: str
    size: int
    storage_key: str
    url: str  # for agents (authenticated): the bytes, with the name and type above


class ChoiceOut(_Out):
    title: str
    payload: str


class MessageOut(_Out):
    id: int
    conversation_id: int
    direction: Literal["inbound", "outbound"]
    author: Literal["customer", "bot", "agent", "system"]
    author_id: int | None
    author_name: str | None
    text: str
    attachments: list[AttachmentOut]
    channel: str
    delivery_state: Literal["queued", "sent", "delivered", "read", "failed"]
    created_at: datetime
    choices: list[ChoiceOut]  # quick replies offered with the message (bot questions)
    # The message as sanitised HTML for display (bot and agent messages are Markdown); None
    # for plain text (customers), which clients show as escaped text with its line breaks.
    html: str | None
    delivery_error: str | None  # why it is `failed` (e.g. "550 5.1.1 ... User unknown"); else null


class ContactRef(_Out):
    id: int
    display_name: str | None


class IdentityOut(_Out):
    channel: str
    address: str


class AccessibilityOut(_Out):
    needs: list[str]
    preferred_modality: Literal["text", "voice"] | None
    interpreter_language: str | None


class ContactOut(_Out):
    id: int
    display_name: str
    language: str | None
    tags: list[str]
    identities: list[IdentityOut]
    accessibility: AccessibilityOut


class HandoffOut(_Out):
    """What the front-line bot handed people with the conversation (its latest hand-off)."""

    reason: str  # customer_request | low_confidence | complaint | human_only_topic | ...
    mode: str | None  # "queue"; out of hours "message" (left one) or "callback"; when no
    # agent took it in time (routing overflow) "overflow_message" or "overflow_callback"
    tags: list[str]  # e.g. ["complaint"]
    topic: str | None  # the human-only topic that was asked about
    details: dict[str, str | None]  # what the bot collected: name, order_number, phone, ...
    summary: str  # the customer's latest questions, one a line ("" when none)
    article_id: str | None  # the last article the bot offered
    at: datetime


class CallOut(_Out):
    """The conversation's latest phone call, from its `call.*` events (relay mode in the inbox)."""

    call_id: str
    transport: str  # sip | twilio | webrtc
    live: bool  # no `call.ended` yet: the agent's replies are spoken to the caller
    started_at: datetime
    ended_at: datetime | None
    duration_s: float | None
    ended_by: str | None  # caller | hub | error


def call_out(
    started: Mapping[str, Any], at: datetime, ended: tuple[Mapping[str, Any], datetime] | None
) -> CallOut:
    """The call summary of a `call.started` payload and its `call.ended` (payload, time)."""
    end, end_at = ended if ended else ({}, None)
    duration = end.get("duration_s")
    return CallOut(
        call_id=str(started.get("call_id") or ""),
        transport=str(started.get("transport") or ""),
        live=ended is None,
        started_at=at,
        ended_at=end_at,
        duration_s=float(duration) if isinstance(duration, int | float) else None,
        ended_by=str(end["by"]) if end.get("by") else None,
    )


def handoff_out(handoff: Mapping[str, Any], at: datetime) -> HandoffOut:
    details = handoff.get("details") or {}
    return HandoffOut(
        reason=str(handoff.get("reason") or "customer_request"),
        mode=handoff.get("mode"),
        tags=[str(t) for t in handoff.get("tags") or ()],
        topic=handoff.get("topic"),
        details={str(k): None if v is None else str(v) for k, v in details.items()},
        summary=str(handoff.get("summary") or ""),
        article_id=handoff.get("article_id"),
        at=at,
    )


class ConversationOut(_Out):
    """ConversationSummary in docs/api.md."""

    id: int
    status: Literal["bot", "queued", "assigned", "pending", "resolved", "closed"]
    channel: str
    inbox: str
    priority: Literal["low", "normal", "high", "urgent"]
    language: str | None
    required_skills: list[str]
    assignee_id: int | None
    team: str | None
    contact: ContactRef
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime | None
    first_response_at: datetime | None
    resolved_at: datetime | None
    csat: int | None
    last_message: MessageOut | None


class AgentOut(_Out):
    id: int
    email: str
    name: str
    role: Literal["agent", "supervisor", "editor", "admin"]


def message_out(m: Message) -> MessageOut:
    return MessageOut.model_validate(message_json(m))


def attachment_url(a: Attachment) -> str:
    query = urllib.parse.urlencode({"name": a.filename, "type": a.content_type})
    return f"/api/attachments/{a.storage_key}?{query}"


def attachment_out(a: Attachment) -> AttachmentOut:
    return AttachmentOut(
        filename=a.filename,
        content_type=a.content_type,
        size=a.size,
        storage_key=a.storage_key,
        url=attachment_url(a),
    )


def contact_out(c: Contact) -> ContactOut:
    a = c.accessibility
    return ContactOut(
        id=c.id,
        display_name=c.display_name,
        language=c.language,
        tags=list(c.tags),
        identities=[IdentityOut(channel=i.channel, address=i.address) for i in c.identities],
        accessibility=AccessibilityOut(
            needs=sorted(n.value for n in a.needs),
            preferred_modality=a.preferred_modality.value if a.preferred_modality else None,
            interpreter_language=a.interpreter_language,
        ),
    )


def conversation_out(
    c: Conversation, contact: Contact | None = None, last_message: Message | None = None
) -> ConversationOut:
    return ConversationOut(
        id=c.id,
        status=c.status.value,
        channel=c.channel,
        inbox=c.inbox,
        priority=c.priority.value,
        language=c.language,
        required_skills=list(c.required_skills),
        assignee_id=c.assignee_id,
        team=c.team,
        contact=ContactRef(id=c.contact_id, display_name=contact.display_name if contact else None),
        created_at=c.created_at,
        updated_at=c.updated_at,
        last_message_at=c.last_message_at,
        first_response_at=c.first_response_at,
        resolved_at=c.resolved_at,
        csat=c.csat,
        last_message=message_out(last_message) if last_message else None,
    )


def agent_out(a: Agent) -> AgentOut:
    return AgentOut(id=a.id, email=a.email, name=a.name, role=a.role.value)


def dump(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict (datetimes as ISO 8601 strings)."""
    return model.model_dump(mode="json")


def json_time(value: datetime) -> str:
    """A datetime as pydantic writes it in JSON (ISO 8601, "Z" for UTC)."""
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def message_json(m: Message) -> dict[str, Any]:
    """`MessageOut` as JSON, built directly rather than validated and dumped by pydantic.

    Every stored message carries one in its event, and pydantic's round trip was a fifth of
    the storage writer's CPU per inbound message. `MessageOut` stays the schema (the API
    document, `message_out`); a test checks the two agree.
    """
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "direction": m.direction.value,
        "author": m.author_kind.value,
        "author_id": m.author_id,
        "author_name": m.author_name,
        "text": m.text,
        "attachments": [dump(attachment_out(a)) for a in m.attachments],
        "channel": m.channel,
        "delivery_state": m.delivery_state.value,
        "created_at": json_time(m.created_at),
        "choices": [{"title": c.title, "payload": c.payload} for c in m.choices],
        "html": message_html(m.text, m.format),
        "delivery_error": m.delivery_error,
    }


def contact_json(c: Contact) -> dict[str, Any]:
    return dump(contact_out(c))


def conversation_json(
    c: Conversation, contact: Contact | None = None, last_message: Message | None = None
) -> dict[str, Any]:
    return dump(conversation_out(c, contact, last_message))


def agent_json(a: Agent) -> dict[str, Any]:
    return dump(agent_out(a))
