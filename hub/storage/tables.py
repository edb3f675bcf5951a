"""Table definitions. Alembic migrations in `migrations/` must match these (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone otherwise).

    SQLite keeps them as text in SQLAlchemy's DATETIME format, "YYYY-MM-DD HH:MM:SS.ffffff";
    this type writes and reads that text itself with datetime's C routines, which is the same
    format at a fraction of the per-value cost of SQLAlchemy's formatting on top of ours.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to storage")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any) -> Any:
    return Field(
        default_factory=lambda: type(default)(), sa_column=sa.Column(sa.JSON, nullable=False)
    )


class ContactRow(SQLModel, table=True):
    __tablename__ = "contact"
    id: int | None = Field(default=None, primary_key=True)
    display_name: str = Field(max_length=200)
    language: str | None = Field(default=None, max_length=16)
    tags: list[str] = _json([])
    accessibility: dict[str, Any] = _json({})
    created_at: datetime = _ts()


class ContactIdentityRow(SQLModel, table=True):
    __tablename__ = "contact_identity"
    __table_args__ = (
        sa.UniqueConstraint("channel", "address", name="uq_identity_channel_address"),
    )
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    channel: str = Field(max_length=32)
    address: str = Field(max_length=320)


class ConversationRow(SQLModel, table=True):
    __tablename__ = "conversation"
    __table_args__ = (
        sa.Index("ix_conversation_status_updated", "status", "updated_at"),
        sa.Index("ix_conversation_contact_channel", "contact_id", "channel", "inbox"),
    )
    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id")
    channel: str = Field(max_length=32)
    inbox: str = Field(max_length=64)
    status: str = Field(max_length=16)
    priority: str = Field(default="normal", max_length=16)
    required_skills: list[str] = _json([])
    language: str | None = Field(default=None, max_length=16)
    assignee_id: int | None = Field(default=None, foreign_key="agent.id", index=True)
    team: str | None = Field(default=None, max_length=64)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    last_message_at: datetime | None = _ts(nullable=True)  # None: nothing said yet
    first_response_at: datetime | None = _ts(nullable=True)
    resolved_at: datetime | None = _ts(nullable=True)
    csat: int | None = None
    # Bumped by every UPDATE of the row, so a process that keeps the conversations it has read
    # (the storage writer process) can tell from this alone whether its copy is current.
    row_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class MessageRow(SQLModel, table=True):
    __tablename__ = "message"
    __table_args__ = (
        # Inbound idempotency: a channel's message id is stored once.
        sa.UniqueConstraint("channel", "channel_message_id", name="uq_message_channel_id"),
        sa.Index("ix_message_conversation", "conversation_id", "id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    direction: str = Field(max_length=8)
    author_kind: str = Field(max_length=8)
    author_id: int | None = None
    author_name: str | None = Field(default=None, max_length=200)
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    attachments: list[dict[str, Any]] = _json([])
    channel: str = Field(max_length=32)
    channel_message_id: str | None = Field(default=None, max_length=255)
    delivery_state: str = Field(max_length=16)
    created_at: datetime = _ts()
    choices: list[dict[str, Any]] = _json([])  # quick replies offered with the message
    # "plain" (customers) or "markdown" (bot, agents): how channels render the text.
    format: str = Field(
        default="plain", max_length=16, sa_column_kwargs={"server_default": "plain"}
    )
    # Why the message is `failed` (shown to the agent); None otherwise.
    delivery_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class OutboxScheduleRow(SQLModel, table=True):
    """Where the outbox stands with an outbound message it could not send yet: a row only for
    messages that failed an attempt (or were resent), so a restart resumes their backoff."""

    __tablename__ = "outbox_schedule"
    message_id: int = Field(foreign_key="message.id", primary_key=True)
    attempts: int  # failed attempts so far
    next_attempt_at: datetime = _ts()
    queued_at: datetime = _ts()  # the lifetime counts from here (stored, or resent)
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))


class EventRow(SQLModel, table=True):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "event"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    conversation_id: int | None = Field(default=None, index=True)
    actor_kind: str = Field(max_length=8)
    actor_id: int | None = None
    payload: dict[str, Any] = _json({})
    created_at: datetime = _ts()


class AgentRow(SQLModel, table=True):
    __tablename__ = "agent"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str = Field(max_length=200)
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    active: bool = True
    created_at: datetime = _ts()


class AgentSessionRow(SQLModel, table=True):
    __tablename__ = "agent_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    agent_id: int = Field(foreign_key="agent.id", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _ts()
    expires_at: datetime = _ts()


class WebchatSessionRow(SQLModel, table=True):
    __tablename__ = "webchat_session"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    contact_id: int = Field(foreign_key="contact.id", index=True)
    conversation_id: int = Field(foreign_key="conversation.id")
    address: str = Field(max_length=320)  # the contact's webchat identity
    created_at: datetime = _ts()


# --- knowledge base ---------------------------------------------------------------------------


class ArticleRow(SQLModel, table=True):
    """The current state of an article; `article_version` keeps every earlier one."""

    __tablename__ = "article"
    __table_args__ = (sa.Index("ix_article_status_language", "status", "language"),)
    id: str = Field(primary_key=True, max_length=100)
    title: str = Field(max_length=200)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    questions: list[str] = _json([])
    short_answer: str | None = Field(default=None, max_length=300)
    language: str = Field(max_length=8)
    tags: list[str] = _json([])
    status: str = Field(max_length=16)
    version: int
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    created_by: int | None = Field(default=None, foreign_key="agent.id")
    updated_by: int | None = Field(default=None, foreign_key="agent.id")


class ArticleVersionRow(SQLModel, table=True):
    __tablename__ = "article_version"
    __table_args__ = (sa.UniqueConstraint("article_id", "version", name="uq_article_version"),)
    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(foreign_key="article.id", max_length=100)
    version: int
    title: str = Field(max_length=200)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    questions: list[str] = _json([])
    short_answer: str | None = Field(default=None, max_length=300)
    language: str = Field(max_length=8)
    tags: list[str] = _json([])
    status: str = Field(max_length=16)
    author_id: int | None = Field(default=None, foreign_key="agent.id")
    created_at: datetime = _ts()
    changes: list[str] = _json([])


class KbFeedbackRow(SQLModel, table=True):
    """Answers to "was this helpful?" from the help center or a conversation."""

    __tablename__ = "kb_feedback"
    # One vote per help-center visitor and article (NULLs, the bot's votes, never collide).
    __table_args__ = (
        sa.UniqueConstraint("article_id", "visitor_id", name="uq_kb_feedback_visitor"),
    )
    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(foreign_key="article.id", max_length=100, index=True)
    helpful: bool
    conversation_id: int | None = Field(default=None, foreign_key="conversation.id")
    created_at: datetime = _ts()
    visitor_id: str | None = Field(default=None, max_length=64)  # the help center's cookie


class KbQueryRow(SQLModel, table=True):
    """Questions asked; the escalated and unanswered ones make the content-gap report."""

    __tablename__ = "kb_query"
    __table_args__ = (sa.Index("ix_kb_query_outcome_created", "outcome", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(max_length=1000)
    language: str | None = Field(default=None, max_length=8)
    # No foreign key: the hit comes from the index, which may briefly lag the database.
    top_article_id: str | None = Field(default=None, max_length=100)
    top_score: float | None = None
    outcome: str = Field(max_length=16)
    source: str = Field(max_length=16)
    created_at: datetime = _ts()


class KbSynonymRow(SQLModel, table=True):
    """One group of words or phrases that mean the same (applied at query time)."""

    __tablename__ = "kb_synonym"
    id: int | None = Field(default=None, primary_key=True)
    terms: list[str] = _json([])


class KbSuggestionRow(SQLModel, table=True):
    """A customer question proposed as an alternate question of an article (learned from
    traffic); the article changes only when a person accepts it."""

    __tablename__ = "kb_suggestion"
    __table_args__ = (
        # Deduplication: one row per article and normalised question.
        sa.UniqueConstraint("article_id", "normalized", name="uq_kb_suggestion_question"),
        sa.Index("ix_kb_suggestion_status_seen", "status", "last_seen_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    article_id: str = Field(foreign_key="article.id", max_length=100, index=True)
    question: str = Field(max_length=500)
    normalized: str = Field(max_length=500)
    count: int = 1
    sources: list[str] = _json([])  # choice | helpful | agent
    conversation_ids: list[int] = _json([])  # the latest few, for the editor to follow
    status: str = Field(max_length=16)  # pending | accepted | rejected
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()
    decided_at: datetime | None = _ts(nullable=True)
    decided_by: int | None = Field(default=None, foreign_key="agent.id")


class AgentRoutingRow(SQLModel, table=True):
    """An agent's routing profile and presence: what the router knows of the agent."""

    __tablename__ = "agent_routing"
    agent_id: int = Field(foreign_key="agent.id", primary_key=True)
    skills: dict[str, Any] = _json({})
    languages: list[str] = _json([])
    teams: list[str] = _json([])
    capacity: int | None = None
    costs: dict[str, Any] = _json({})
    wrap_up_s: float | None = None
    presence: str = Field(default="offline", max_length=24)
    updated_at: datetime = _ts()


class RoutingPolicyRow(SQLModel, table=True):
    """The routing policy in force, as the admin wrote it (YAML or JSON); one row."""

    __tablename__ = "routing_policy"
    id: int = Field(default=1, primary_key=True)
    source: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    updated_at: datetime = _ts()
    updated_by: int | None = Field(default=None, foreign_key="agent.id")


metadata = SQLModel.metadata
