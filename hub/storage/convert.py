"""Rows <-> domain values."""

from __future__ import annotations

from typing import Any

from hub.model import (
    AccessibilityNeed,
    AccessibilityProfile,
    Agent,
    Attachment,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    Event,
    EventKind,
    Identity,
    Message,
    Modality,
    Priority,
    Role,
)
from hub.storage.tables import AgentRow, ContactRow, ConversationRow, EventRow, MessageRow


def _id(value: int | None) -> int:
    assert value is not None, "row was not flushed"
    return value


def accessibility_to_json(profile: AccessibilityProfile) -> dict[str, Any]:
    return {
        "needs": sorted(n.value for n in profile.needs),
        "preferred_modality": profile.preferred_modality.value
        if profile.preferred_modality
        else None,
        "interpreter_language": profile.interpreter_language,
    }


def accessibility_from_json(data: dict[str, Any]) -> AccessibilityProfile:
    modality = data.get("preferred_modality")
    return AccessibilityProfile(
        needs=frozenset(AccessibilityNeed(n) for n in data.get("needs", ())),
        preferred_modality=Modality(modality) if modality else None,
        interpreter_language=data.get("interpreter_language"),
    )


def contact(row: ContactRow, identities: list[Identity]) -> Contact:
    return Contact(
        id=_id(row.id),
        display_name=row.display_name,
        identities=tuple(identities),
        language=row.language,
        tags=tuple(row.tags),
        accessibility=accessibility_from_json(row.accessibility or {}),
        created_at=row.created_at,
    )


def conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        id=_id(row.id),
        contact_id=row.contact_id,
        channel=row.channel,
        inbox=row.inbox,
        status=ConversationStatus(row.status),
        priority=Priority(row.priority),
        required_skills=tuple(row.required_skills),
        language=row.language,
        assignee_id=row.assignee_id,
        team=row.team,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_message_at=row.last_message_at,
        first_response_at=row.first_response_at,
        resolved_at=row.resolved_at,
        csat=row.csat,
    )


def copy_conversation(src: Conversation, row: ConversationRow) -> None:
    row.status = src.status.value
    row.priority = src.priority.value
    row.required_skills = list(src.required_skills)
    row.language = src.language
    row.assignee_id = src.assignee_id
    row.team = src.team
    row.updated_at = src.updated_at
    row.last_message_at = src.last_message_at
    row.first_response_at = src.first_response_at
    row.resolved_at = src.resolved_at
    row.csat = src.csat


def message(row: MessageRow) -> Message:
    return Message(
        id=_id(row.id),
        conversation_id=row.conversation_id,
        direction=Direction(row.direction),
        author_kind=AuthorKind(row.author_kind),
        author_id=row.author_id,
        author_name=row.author_name,
        text=row.text,
        attachments=tuple(Attachment(**a) for a in row.attachments),
        channel=row.channel,
        channel_message_id=row.channel_message_id,
        delivery_state=DeliveryState(row.delivery_state),
        created_at=row.created_at,
    )


def event(row: EventRow) -> Event:
    return Event(
        id=_id(row.id),
        kind=EventKind(row.kind),
        conversation_id=row.conversation_id,
        actor_kind=AuthorKind(row.actor_kind),
        actor_id=row.actor_id,
        payload=row.payload,
        created_at=row.created_at,
    )


def agent(row: AgentRow) -> Agent:
    return Agent(
        id=_id(row.id), email=row.email, name=row.name, role=Role(row.role), active=row.active
    )
