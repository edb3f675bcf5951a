"""The conversation model every channel is normalised into.

Pure values: no I/O, no web framework, no SQL. Storage maps these to rows; the API maps
them to JSON. State changes go through the functions at the bottom so the lifecycle rules
live in one place.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.errors import InvalidTransition


def utcnow() -> datetime:
    """Aware UTC now; every timestamp in the model is aware UTC."""
    return datetime.now(UTC)


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class AuthorKind(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class DeliveryState(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class ConversationStatus(enum.StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    PENDING = "pending"  # waiting on the customer
    RESOLVED = "resolved"
    CLOSED = "closed"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Role(enum.StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    EDITOR = "editor"
    ADMIN = "admin"


class AccessibilityNeed(enum.StrEnum):
    DEAF_HARD_OF_HEARING = "deaf_hard_of_hearing"
    BLIND_LOW_VISION = "blind_low_vision"
    SPEECH = "speech"
    COGNITIVE = "cognitive"


class Modality(enum.StrEnum):
    TEXT = "text"
    VOICE = "voice"


class EventKind(enum.StrEnum):
    CONTACT_CREATED = "contact.created"
    CONVERSATION_CREATED = "conversation.created"
    CONVERSATION_UPDATED = "conversation.updated"
    MESSAGE_CREATED = "message.created"
    MESSAGE_DELIVERY = "message.delivery"


@dataclass(frozen=True, slots=True)
class Identity:
    """How a contact is reached on one channel; unique per channel."""

    channel: str
    address: str


@dataclass(frozen=True, slots=True)
class AccessibilityProfile:
    """Needs that follow the contact across channels (special-needs service)."""

    needs: frozenset[AccessibilityNeed] = frozenset()
    preferred_modality: Modality | None = None
    interpreter_language: str | None = None

    @property
    def is_empty(self) -> bool:
        return not self.needs and self.preferred_modality is None and not self.interpreter_language


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    display_name: str
    identities: tuple[Identity, ...] = ()
    language: str | None = None
    tags: tuple[str, ...] = ()
    accessibility: AccessibilityProfile = AccessibilityProfile()
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata only; the bytes live in the data directory under `storage_key`."""

    filename: str
    content_type: str
    size: int
    storage_key: str


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    contact_id: int
    channel: str
    inbox: str
    status: ConversationStatus
    priority: Priority = Priority.NORMAL
    required_skills: tuple[str, ...] = ()
    language: str | None = None
    assignee_id: int | None = None
    team: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    last_message_at: datetime | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    csat: int | None = None


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    direction: Direction
    author_kind: AuthorKind
    text: str
    channel: str
    author_id: int | None = None
    author_name: str | None = None
    attachments: tuple[Attachment, ...] = ()
    channel_message_id: str | None = None
    delivery_state: DeliveryState = DeliveryState.QUEUED
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the append-only log; every state change writes one."""

    id: int
    kind: EventKind
    conversation_id: int | None
    actor_kind: AuthorKind
    actor_id: int | None
    payload: Mapping[str, Any]
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class Agent:
    id: int
    email: str
    name: str
    role: Role
    active: bool = True


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """What a channel adapter hands the hub: normalised, not yet stored."""

    channel: str
    inbox: str
    sender: Identity
    text: str
    channel_message_id: str | None = None
    sender_name: str | None = None
    language: str | None = None
    attachments: tuple[Attachment, ...] = ()
    conversation_id: int | None = None  # set when the channel already knows the thread
    raw: Mapping[str, Any] | None = None


# --- lifecycle ------------------------------------------------------------------------------

_S = ConversationStatus
ALLOWED_TRANSITIONS: Mapping[ConversationStatus, frozenset[ConversationStatus]] = {
    _S.BOT: frozenset({_S.QUEUED, _S.ASSIGNED, _S.RESOLVED}),
    _S.QUEUED: frozenset({_S.ASSIGNED, _S.RESOLVED, _S.BOT}),
    _S.ASSIGNED: frozenset({_S.QUEUED, _S.ASSIGNED, _S.PENDING, _S.RESOLVED}),
    _S.PENDING: frozenset({_S.ASSIGNED, _S.QUEUED, _S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.CLOSED, _S.QUEUED, _S.ASSIGNED}),
    _S.CLOSED: frozenset({_S.QUEUED, _S.ASSIGNED}),
}
OPEN_STATUSES = frozenset({_S.BOT, _S.QUEUED, _S.ASSIGNED, _S.PENDING})


def transition(conv: Conversation, to: ConversationStatus, now: datetime) -> Conversation:
    """Return `conv` moved to status `to`, or raise InvalidTransition."""
    if to not in ALLOWED_TRANSITIONS[conv.status]:
        raise InvalidTransition(f"a {conv.status} conversation cannot become {to}")
    changes: dict[str, Any] = {"status": to, "updated_at": now}
    if to is _S.RESOLVED:
        changes["resolved_at"] = now
    elif conv.status in (_S.RESOLVED, _S.CLOSED):
        changes["resolved_at"] = None
    if to is _S.QUEUED:
        changes["assignee_id"] = None
    return dataclasses.replace(conv, **changes)


def assign(conv: Conversation, agent_id: int, now: datetime) -> Conversation:
    """Give the conversation to an agent; reopens a resolved or closed one."""
    moved = transition(conv, _S.ASSIGNED, now)
    return dataclasses.replace(moved, assignee_id=agent_id)


def reopen(conv: Conversation, now: datetime) -> Conversation:
    """Resolved/closed back to work: to its previous agent if it had one, else the queue."""
    if conv.status not in (_S.RESOLVED, _S.CLOSED):
        raise InvalidTransition(f"a {conv.status} conversation is already open")
    if conv.assignee_id is not None:
        return dataclasses.replace(transition(conv, _S.ASSIGNED, now), assignee_id=conv.assignee_id)
    return transition(conv, _S.QUEUED, now)


def after_customer_message(conv: Conversation, now: datetime) -> Conversation:
    """The status a conversation takes when the customer writes.

    A customer writing back ends 'pending' and reopens a resolved or closed conversation, as
    Chatwoot and Zammad do, so nothing the customer says lands in a finished conversation.
    """
    if conv.status is _S.PENDING:
        moved = dataclasses.replace(
            transition(conv, _S.ASSIGNED, now), assignee_id=conv.assignee_id
        )
    elif conv.status in (_S.RESOLVED, _S.CLOSED):
        moved = reopen(conv, now)
    else:
        moved = conv
    return dataclasses.replace(moved, updated_at=now, last_message_at=now)


def after_business_reply(conv: Conversation, now: datetime) -> Conversation:
    """Record the first response time on the first agent or bot reply."""
    first = conv.first_response_at or now
    return dataclasses.replace(conv, first_response_at=first, updated_at=now, last_message_at=now)
