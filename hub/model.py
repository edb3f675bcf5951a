"""The conversation model every channel is normalised into.

Pure values: no I/O, no web framework, no SQL. Storage maps these to rows; the API maps
them to JSON. State changes go through the functions at the bottom so the lifecycle rules
live in one place.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hub.errors import InvalidTransition, ValidationFailed


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
    READ = "read"  # seen by the recipient (web chat: the widget open; the inbox: an agent)
    FAILED = "failed"


class MessageFormat(enum.StrEnum):
    """How a message's text is written: customers write plain text; the bot and agents write
    Markdown, which each channel renders its own way (hub.formatting)."""

    PLAIN = "plain"
    MARKDOWN = "markdown"


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
    ARTICLE_CREATED = "article.created"
    ARTICLE_UPDATED = "article.updated"
    ARTICLE_STATUS_CHANGED = "article.status_changed"
    KB_SYNONYMS_UPDATED = "kb.synonyms_updated"
    # A question learned from traffic taken into an article, or turned down (issue #22).
    KB_SUGGESTION_ACCEPTED = "kb.suggestion_accepted"
    KB_SUGGESTION_REJECTED = "kb.suggestion_rejected"
    BOT_DECISION = "bot.decision"  # what the bot did with a customer message, and why
    ROUTING_DECISION = "routing.decision"  # offers, escalations, overflow: with the why
    AGENT_PRESENCE = "agent.presence"
    CONVERSATION_SLA = "conversation.sla"  # an SLA target nears (warning) or passes (breach)
    # A channel address joined an existing contact (a Telegram /start deep link).
    IDENTITY_LINKED = "contact.identity_linked"
    # A channel says the address cannot be reached any more (the user blocked the bot).
    IDENTITY_UNREACHABLE = "contact.identity_unreachable"
    # A live call: answered (transport, caller, dialled, rule and flow), each step it took
    # (menu choices, language, bot, queue, voicemail, CSAT), and its end (duration, who hung up).
    CALL_STARTED = "call.started"
    CALL_STEP = "call.step"
    CALL_ENDED = "call.ended"


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
class Choice:
    """A quick reply offered with a message: a button where the channel has them, and the
    message text always lists it too (channels without buttons fall back to text)."""

    title: str
    payload: str


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
    choices: tuple[Choice, ...] = ()
    format: MessageFormat = MessageFormat.PLAIN
    # Why the message is `failed` (e.g. the relay's "550 5.1.1 ... User unknown"); else None.
    delivery_error: str | None = None


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


class Presence(enum.StrEnum):
    """What an agent is doing; the router offers work only to AVAILABLE agents."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    AFTER_CONTACT_WORK = "after_contact_work"  # wrap-up; back to available when it ends
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class AgentRouting:
    """An agent's routing profile (skills 1-5, languages, teams, capacity) and presence."""

    agent_id: int
    skills: Mapping[str, int]
    languages: tuple[str, ...] = ("en",)
    teams: tuple[str, ...] = ()
    capacity: int | None = None  # None: the routing policy's default
    costs: Mapping[str, int] = field(default_factory=dict)  # per channel, over the policy's
    wrap_up_s: float | None = None
    presence: Presence = Presence.OFFLINE


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
    # Why the message was made by a machine (an out-of-office reply, a bounce, list mail), or
    # None. Such a message is stored and shown, but the bot never answers it (no mail loops).
    automated: str | None = None
    # Start a new conversation even when the sender has one open (a mail that starts a new
    # thread); without `conversation_id` the message otherwise joins the sender's latest one.
    new_conversation: bool = False


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


# --- knowledge base -------------------------------------------------------------------------

ARTICLE_LANGUAGES = ("en", "zh")
MAX_ARTICLE_ID = 100
MAX_TITLE = 200
MAX_BODY = 100_000
# Whole intent sets from chat logs are imported as alternate questions (Banking77: ~130).
MAX_QUESTIONS = 500
MAX_QUESTION_CHARS = 500
MAX_SHORT_ANSWER = 300  # one or two sentences: it is read out on the phone and faxed
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_QUERY_CHARS = 1000
CONTENT_FIELDS = ("title", "body", "questions", "short_answer", "language", "tags")

# Ids come from other systems on import (e.g. "reverted_card_payment?"), so anything printable
# goes, except what would make a path segment ambiguous: "/", "\\", whitespace, a leading dot.
_ARTICLE_ID = re.compile(r"^[^\s/\\.\x00-\x1f\x7f][^\s/\\\x00-\x1f\x7f]*$")
# C0/C1 control characters; newlines and tabs are handled separately where they matter.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")


class ArticleStatus(enum.StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"
    ARCHIVED = "archived"


class KbOutcome(enum.StrEnum):
    """What came of a knowledge-base question."""

    ANSWERED = "answered"
    ESCALATED = "escalated"  # hits, but none good enough to answer with
    NO_HIT = "no_hit"


class KbSource(enum.StrEnum):
    BOT = "bot"
    CONSOLE = "console"  # an agent or the CLI
    HELP = "help"  # the public help center


@dataclass(frozen=True, slots=True)
class ArticleContent:
    """What an editor writes; validated and normalised by `article_content`."""

    title: str
    body: str  # Markdown
    questions: tuple[str, ...] = ()
    short_answer: str | None = None
    language: str = "en"
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Article:
    id: str
    content: ArticleContent
    status: ArticleStatus
    version: int
    created_at: datetime
    updated_at: datetime
    created_by: int | None = None  # agent id; None for imports and the demo seed
    updated_by: int | None = None


@dataclass(frozen=True, slots=True)
class ArticleVersion:
    """A snapshot taken after every change; restoring one makes a new version."""

    article_id: str
    version: int
    content: ArticleContent
    status: ArticleStatus
    author_id: int | None
    created_at: datetime
    changes: tuple[str, ...]  # field names that differ from the previous version


@dataclass(frozen=True, slots=True)
class KbQuery:
    """A question put to the knowledge base, kept for the content-gap report."""

    text: str
    language: str | None
    top_article_id: str | None
    top_score: float | None
    outcome: KbOutcome
    source: KbSource
    created_at: datetime


_A = ArticleStatus
ARTICLE_TRANSITIONS: Mapping[ArticleStatus, frozenset[ArticleStatus]] = {
    _A.DRAFT: frozenset({_A.IN_REVIEW, _A.PUBLISHED}),
    _A.IN_REVIEW: frozenset({_A.DRAFT, _A.PUBLISHED}),
    _A.PUBLISHED: frozenset({_A.ARCHIVED, _A.DRAFT}),
    _A.ARCHIVED: frozenset({_A.DRAFT}),
}


def _invalid(detail: str, code: str = "invalid_article") -> ValidationFailed:
    return ValidationFailed(detail, code=code)


def one_line(text: str) -> str:
    """Control characters out, runs of whitespace (newlines too) to one space, trimmed."""
    return _SPACE.sub(" ", _CONTROL.sub("", text)).strip()


def article_language(code: str) -> str:
    """The article language ("en" or "zh") of a tag such as "en-GB" or "zh-CN", or an error."""
    primary = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    if primary not in ARTICLE_LANGUAGES:
        raise _invalid(
            f"unknown language {code!r}; use one of {', '.join(ARTICLE_LANGUAGES)}",
            "unknown_language",
        )
    return primary


def check_article_id(article_id: str) -> str:
    if not (0 < len(article_id) <= MAX_ARTICLE_ID) or not _ARTICLE_ID.match(article_id):
        raise _invalid(
            f"article id {article_id[:120]!r}: use 1-{MAX_ARTICLE_ID} printable characters "
            "without spaces, '/' or '\\', not starting with '.'",
            "invalid_article_id",
        )
    return article_id


def slugify(title: str, max_chars: int = 60) -> str:
    """An ASCII slug of the title ("" when it has no ASCII letters or digits, e.g. Chinese)."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = "-".join(words)[:max_chars].strip("-")
    return slug


def article_content(
    *,
    title: str,
    body: str,
    questions: Sequence[str] = (),
    short_answer: str | None = None,
    language: str,
    tags: Sequence[str] = (),
) -> ArticleContent:
    """Validated, normalised content, or ValidationFailed naming the first problem.

    Normalising makes an unchanged re-import compare equal: titles, questions and tags are
    single-line and trimmed, duplicates dropped (first kept), tags lower-case, line endings
    in the body are "\\n" and it has no leading blank lines or trailing whitespace.
    """
    clean_title = one_line(title)
    if not clean_title:
        raise _invalid("the title is empty")
    if len(clean_title) > MAX_TITLE:
        raise _invalid(f"the title has {len(clean_title)} characters; the limit is {MAX_TITLE}")
    clean_body = _CONTROL.sub("", body.replace("\r\n", "\n").replace("\r", "\n"))
    clean_body = clean_body.lstrip("\n").rstrip()
    if len(clean_body) > MAX_BODY:
        raise _invalid(f"the body has {len(clean_body)} characters; the limit is {MAX_BODY}")
    clean_questions = _unique(one_line(q) for q in questions)
    if len(clean_questions) > MAX_QUESTIONS:
        raise _invalid(f"{len(clean_questions)} questions; the limit is {MAX_QUESTIONS}")
    for q in clean_questions:
        if len(q) > MAX_QUESTION_CHARS:
            raise _invalid(
                f"question {q[:40]!r}… has {len(q)} characters; the limit is {MAX_QUESTION_CHARS}"
            )
    answer = one_line(short_answer) if short_answer else ""
    if len(answer) > MAX_SHORT_ANSWER:
        raise _invalid(
            f"the short answer has {len(answer)} characters; the limit is {MAX_SHORT_ANSWER} "
            "(one or two sentences)"
        )
    clean_tags = _unique(one_line(t).lower() for t in tags)
    if len(clean_tags) > MAX_TAGS:
        raise _invalid(f"{len(clean_tags)} tags; the limit is {MAX_TAGS}")
    for t in clean_tags:
        if len(t) > MAX_TAG_CHARS:
            raise _invalid(f"tag {t[:40]!r}… is longer than {MAX_TAG_CHARS} characters")
    return ArticleContent(
        title=clean_title,
        body=clean_body,
        questions=clean_questions,
        short_answer=answer or None,
        language=article_language(language),
        tags=clean_tags,
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def changed_fields(before: ArticleContent, after: ArticleContent) -> tuple[str, ...]:
    return tuple(f for f in CONTENT_FIELDS if getattr(before, f) != getattr(after, f))


def new_article(
    article_id: str,
    content: ArticleContent,
    status: ArticleStatus,
    actor_id: int | None,
    now: datetime,
) -> Article:
    return Article(
        id=check_article_id(article_id),
        content=content,
        status=status,
        version=1,
        created_at=now,
        updated_at=now,
        created_by=actor_id,
        updated_by=actor_id,
    )


def edit_article(
    article: Article, content: ArticleContent, actor_id: int | None, now: datetime
) -> Article:
    """The next version with new content (same status)."""
    return dataclasses.replace(
        article, content=content, version=article.version + 1, updated_at=now, updated_by=actor_id
    )


def change_article_status(
    article: Article, to: ArticleStatus, actor_id: int | None, now: datetime, *, force: bool = False
) -> Article:
    """The next version in status `to`; InvalidTransition unless the workflow allows it.

    `force` is for imports, where the file states the status the article is to have.
    """
    if not force and to not in ARTICLE_TRANSITIONS[article.status]:
        allowed = ", ".join(sorted(ARTICLE_TRANSITIONS[article.status]))
        raise InvalidTransition(
            f"a {article.status} article cannot become {to}; it can become {allowed}"
        )
    return dataclasses.replace(
        article, status=to, version=article.version + 1, updated_at=now, updated_by=actor_id
    )


def snapshot(article: Article, changes: Sequence[str]) -> ArticleVersion:
    """The version record of `article` as it is now."""
    return ArticleVersion(
        article_id=article.id,
        version=article.version,
        content=article.content,
        status=article.status,
        author_id=article.updated_by,
        created_at=article.updated_at,
        changes=tuple(changes),
    )


def clean_query(text: str) -> str:
    """A customer question ready for search: one line, bounded, or ValidationFailed."""
    if len(text) > MAX_QUERY_CHARS * 4:  # refuse huge input before scanning it
        raise _invalid(f"the query is longer than {MAX_QUERY_CHARS} characters", "query_too_long")
    query = one_line(text)
    if not query:
        raise _invalid("the query is empty", "empty_query")
    if len(query) > MAX_QUERY_CHARS:
        raise _invalid(f"the query is longer than {MAX_QUERY_CHARS} characters", "query_too_long")
    return query
