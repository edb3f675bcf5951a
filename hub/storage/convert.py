"""Rows <-> domain values."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from hub.model import (
    AccessibilityNeed,
    AccessibilityProfile,
    Agent,
    AgentRouting,
    Article,
    ArticleContent,
    ArticleStatus,
    ArticleVersion,
    Attachment,
    AuthorKind,
    Choice,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    Event,
    EventKind,
    Identity,
    KbOutcome,
    KbQuery,
    KbSource,
    Message,
    MessageFormat,
    Modality,
    Presence,
    Priority,
    Role,
)
from hub.ports import NewMessage

# Converters take ORM rows and Core result rows alike (attribute access by column name).
Row = Any


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


def contact(row: Row, identities: list[Identity]) -> Contact:
    return Contact(
        id=_id(row.id),
        display_name=row.display_name,
        identities=tuple(identities),
        language=row.language,
        tags=tuple(row.tags),
        accessibility=accessibility_from_json(row.accessibility or {}),
        created_at=row.created_at,
    )


def conversation(row: Row) -> Conversation:
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


def _same(value: Any) -> Any:
    return value


def _enum_value(value: Any) -> Any:
    return value.value


# The mutable columns of a conversation row: each field's column value.
_CONVERSATION_COLUMNS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("status", _enum_value),
    ("priority", _enum_value),
    ("required_skills", list),
    ("language", _same),
    ("assignee_id", _same),
    ("team", _same),
    ("updated_at", _same),
    ("last_message_at", _same),
    ("first_response_at", _same),
    ("resolved_at", _same),
    ("csat", _same),
)


_CONVERSATION_STATE = operator.attrgetter(*(name for name, _ in _CONVERSATION_COLUMNS))


def conversation_values(src: Conversation, before: Conversation | None = None) -> dict[str, Any]:
    """The mutable columns of a conversation row; with `before`, only those that differ."""
    now = _CONVERSATION_STATE(src)
    if before is None:
        return {
            name: to_column(v)
            for (name, to_column), v in zip(_CONVERSATION_COLUMNS, now, strict=True)
        }
    then = _CONVERSATION_STATE(before)
    return {
        name: to_column(v)
        for (name, to_column), v, old in zip(_CONVERSATION_COLUMNS, now, then, strict=True)
        if v != old
    }


def message(row: Row) -> Message:
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
        choices=tuple(Choice(**c) for c in row.choices),
        format=MessageFormat(row.format),
        delivery_error=row.delivery_error,
    )


def new_message(message_id: int, new: NewMessage) -> Message:
    """A message just stored from `new`, as reading its row back would give it."""
    return Message(
        id=message_id,
        conversation_id=new.conversation_id,
        direction=Direction(new.direction),
        author_kind=new.author_kind,
        author_id=new.author_id,
        author_name=new.author_name,
        text=new.text,
        attachments=new.attachments,
        channel=new.channel,
        channel_message_id=new.channel_message_id,
        delivery_state=new.delivery_state,
        created_at=new.created_at,
        choices=new.choices,
        format=new.format,
    )


def event(row: Row) -> Event:
    return Event(
        id=_id(row.id),
        kind=EventKind(row.kind),
        conversation_id=row.conversation_id,
        actor_kind=AuthorKind(row.actor_kind),
        actor_id=row.actor_id,
        payload=row.payload,
        created_at=row.created_at,
    )


def agent(row: Row) -> Agent:
    return Agent(
        id=_id(row.id), email=row.email, name=row.name, role=Role(row.role), active=row.active
    )


def agent_routing(row: Row) -> AgentRouting:
    return AgentRouting(
        agent_id=row.agent_id,
        skills={str(k): int(v) for k, v in row.skills.items()},
        languages=tuple(row.languages),
        teams=tuple(row.teams),
        capacity=row.capacity,
        costs={str(k): int(v) for k, v in row.costs.items()},
        wrap_up_s=row.wrap_up_s,
        presence=Presence(row.presence),
    )


# --- knowledge base ---------------------------------------------------------------------------


def article_content(row: Row) -> ArticleContent:
    return ArticleContent(
        title=row.title,
        body=row.body,
        questions=tuple(row.questions),
        short_answer=row.short_answer,
        language=row.language,
        tags=tuple(row.tags),
    )


def content_values(content: ArticleContent) -> dict[str, Any]:
    return {
        "title": content.title,
        "body": content.body,
        "questions": list(content.questions),
        "short_answer": content.short_answer,
        "language": content.language,
        "tags": list(content.tags),
    }


def article(row: Row) -> Article:
    return Article(
        id=row.id,
        content=article_content(row),
        status=ArticleStatus(row.status),
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
        updated_by=row.updated_by,
    )


def article_values(src: Article) -> dict[str, Any]:
    """Every column of an article row."""
    return {
        "id": src.id,
        **content_values(src.content),
        "status": src.status.value,
        "version": src.version,
        "created_at": src.created_at,
        "updated_at": src.updated_at,
        "created_by": src.created_by,
        "updated_by": src.updated_by,
    }


def article_version(row: Row) -> ArticleVersion:
    return ArticleVersion(
        article_id=row.article_id,
        version=row.version,
        content=article_content(row),
        status=ArticleStatus(row.status),
        author_id=row.author_id,
        created_at=row.created_at,
        changes=tuple(row.changes),
    )


def kb_query(row: Row) -> KbQuery:
    return KbQuery(
        text=row.text,
        language=row.language,
        top_article_id=row.top_article_id,
        top_score=row.top_score,
        outcome=KbOutcome(row.outcome),
        source=KbSource(row.source),
        created_at=row.created_at,
    )
