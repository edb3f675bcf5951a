"""The small typed interfaces plugins and infrastructure implement.

`channels/`, `bot/` and `kb/` depend on these and on `hub.model`, never on the storage or
API modules; the composition root (`hub.api.app`) wires concrete implementations in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Literal,
    Protocol,
    TypedDict,
    TypeVar,
    runtime_checkable,
)

from hub.model import (
    Agent,
    AgentRouting,
    Article,
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
    InboundMessage,
    KbOutcome,
    KbQuery,
    Message,
    MessageFormat,
    Role,
)

if TYPE_CHECKING:  # hub.calls.media imports SendResult from here
    from hub.calls.media import CallControl

T = TypeVar("T")
ItemT = TypeVar("ItemT")


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store; the store assigns its id."""

    conversation_id: int
    direction: str
    author_kind: AuthorKind
    text: str
    channel: str
    created_at: datetime
    author_id: int | None = None
    author_name: str | None = None
    channel_message_id: str | None = None
    delivery_state: DeliveryState = DeliveryState.QUEUED
    attachments: tuple[Attachment, ...] = ()
    choices: tuple[Choice, ...] = ()
    format: MessageFormat = MessageFormat.PLAIN


@dataclass(frozen=True, slots=True)
class SendSchedule:
    """Where the outbox stands with an outbound message it has not sent yet (stored, so a
    restart resumes the backoff instead of starting over)."""

    attempts: int  # failed attempts so far
    next_attempt_at: datetime
    queued_at: datetime  # the retry lifetime counts from here: stored, or resent by an agent
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class PendingSend:
    """A `queued` outbound message and its schedule (None: never tried yet)."""

    message: Message
    schedule: SendSchedule | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append to the log; the store assigns its id and time."""

    kind: EventKind
    conversation_id: int | None
    payload: dict[str, Any]
    actor_kind: AuthorKind = AuthorKind.SYSTEM
    actor_id: int | None = None


# --- storage ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    status: tuple[ConversationStatus, ...] = ()
    assignee_id: int | None = None
    unassigned: bool = False
    channel: str | None = None
    contact_id: int | None = None
    include_empty: bool = False  # conversations nobody has written in yet
    limit: int = 50


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    status: tuple[ArticleStatus, ...] = ()
    language: str | None = None
    tag: str | None = None
    text: str | None = None  # a substring of the title
    limit: int | None = 100  # None: all of them (index rebuilds, export)


@dataclass(frozen=True, slots=True)
class KbSuggestion:
    """A customer question proposed as an alternate question of an article (issue #22)."""

    id: int | None  # None until stored
    article_id: str
    question: str  # as the customer wrote it, on one line
    normalized: str  # the deduplication key (per article)
    count: int  # times it was seen (once per conversation)
    sources: tuple[str, ...]  # choice | helpful | agent
    conversation_ids: tuple[int, ...]  # the latest few it was seen in
    status: str  # pending | accepted | rejected
    created_at: datetime
    last_seen_at: datetime
    decided_at: datetime | None = None
    decided_by: int | None = None


@dataclass(frozen=True, slots=True)
class SuggestionFilter:
    article_id: str | None = None
    status: str | None = "pending"  # None: any
    order: str = "recent"  # recent (last seen first) | frequent (highest count first)
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AgentSession:
    agent: Agent
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class WebchatSession:
    id: int
    contact_id: int
    conversation_id: int
    address: str


class UnitOfWork(Protocol):
    """Storage operations inside one database transaction.

    Runs on a storage thread, never on the event loop: implementations are synchronous.
    Every state change also appends an Event through `append_event(s)`; the store publishes
    the committed events on the event bus. The plural methods exist for the hot inbound path,
    which handles a whole group-committed batch with a few statements.
    """

    def append_events(self, events: Sequence[NewEvent]) -> list[Event]: ...
    def append_event(
        self,
        kind: EventKind,
        conversation_id: int | None,
        payload: dict[str, Any],
        actor_kind: AuthorKind = AuthorKind.SYSTEM,
        actor_id: int | None = None,
    ) -> Event: ...

    # contacts
    def contact(self, contact_id: int) -> Contact | None: ...
    def contact_by_identity(self, identity: Identity) -> Contact | None: ...
    def create_contact(
        self, display_name: str, identities: Sequence[Identity], language: str | None
    ) -> Contact: ...
    def rename_contact(self, contact_id: int, display_name: str) -> None: ...
    def add_identity(self, contact_id: int, identity: Identity) -> Contact:
        """Link another channel's address to an existing contact (one contact across
        channels). An identity already on another contact raises HubError `identity_taken`
        (409); already on this one is a no-op."""
        ...

    # conversations
    def conversation(
        self, conversation_id: int, *, for_update: bool = False
    ) -> Conversation | None: ...
    def conversations_by_id(
        self, conversation_ids: Collection[int], *, for_update: bool = False
    ) -> dict[int, Conversation]: ...
    def latest_conversation(
        self, contact_id: int, channel: str, inbox: str
    ) -> Conversation | None: ...
    def create_conversation(
        self,
        contact_id: int,
        channel: str,
        inbox: str,
        status: ConversationStatus,
        language: str | None,
    ) -> Conversation: ...
    def save_conversations(self, conversations: Sequence[Conversation]) -> None: ...
    def conversations(self, flt: ConversationFilter) -> list[Conversation]: ...
    def last_messages(self, conversation_ids: Sequence[int]) -> dict[int, Message]: ...
    def contacts(self, contact_ids: Sequence[int]) -> dict[int, Contact]: ...

    # messages
    def messages_by_channel_ids(
        self, keys: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], Message]:
        """Stored messages by (channel, channel message id)."""
        ...

    def add_messages(self, messages: Sequence[NewMessage]) -> list[Message]: ...
    def messages(self, conversation_id: int, limit: int = 500) -> list[Message]: ...
    def message(self, message_id: int) -> Message | None: ...
    def set_delivery_state(
        self, message_id: int, state: DeliveryState, channel_message_id: str | None = None
    ) -> Message | None:
        """Record a send's outcome; `channel_message_id` (the channel's id for the sent
        message, e.g. an email Message-ID) is kept when given."""
        ...

    def pending_sends(self, after_id: int = 0, limit: int = 500) -> list[PendingSend]:
        """`queued` outbound messages with ids above `after_id`, by id, with their schedule."""
        ...

    def save_send_schedule(self, message_id: int, schedule: SendSchedule | None) -> None:
        """Store where the outbox stands with a message; None forgets it (sent or failed)."""
        ...

    def fail_delivery(self, message_id: int, error: str) -> Message | None:
        """Mark the message `failed` for good with the reason an agent reads."""
        ...

    def requeue_delivery(self, message_id: int, queued_at: datetime) -> Message | None:
        """A failed message becomes `queued` again (no error) with a fresh schedule."""
        ...

    def mark_delivery(
        self, conversation_id: int, direction: Direction, up_to: int, state: DeliveryState
    ) -> list[Message]:
        """Receipts: the conversation's `direction` messages up to id `up_to` that are not yet
        in `state` or later (delivered < read; a failed one stays failed) move to `state`;
        the changed messages are returned."""
        ...

    def events(self, conversation_id: int) -> list[Event]: ...

    # agents and sessions
    def add_agent(self, email: str, name: str, role: Role, password_hash: str) -> Agent: ...
    def agent(self, agent_id: int) -> Agent | None: ...
    def agent_credentials(self, email: str) -> tuple[Agent, str] | None: ...
    def set_agent_password(self, agent_id: int, password_hash: str) -> None: ...
    def create_agent_session(
        self, token_hash: str, agent_id: int, csrf_token: str, expires_at: datetime
    ) -> None: ...
    def agent_session(self, token_hash: str, now: datetime) -> AgentSession | None: ...
    def delete_agent_session(self, token_hash: str) -> None: ...
    def create_webchat_session(
        self, token_hash: str, contact_id: int, conversation_id: int, address: str
    ) -> WebchatSession: ...
    def webchat_session(self, token_hash: str) -> WebchatSession | None: ...

    # knowledge base
    def agents(self, agent_ids: Collection[int]) -> dict[int, Agent]: ...
    def article(self, article_id: str, *, for_update: bool = False) -> Article | None: ...
    def articles(self, flt: ArticleFilter) -> list[Article]:
        """Newest change first."""
        ...

    def add_article(self, article: Article) -> None:
        """Insert; a taken id raises HubError `duplicate_id` (409)."""
        ...

    def save_article(self, article: Article) -> None: ...
    def add_article_version(self, version: ArticleVersion) -> None: ...
    def article_versions(self, article_id: str) -> list[ArticleVersion]:
        """Newest first."""
        ...

    def article_version(self, article_id: str, version: int) -> ArticleVersion | None: ...
    def add_kb_feedback(
        self, article_id: str, helpful: bool, conversation_id: int | None, now: datetime
    ) -> None: ...
    def kb_feedback_counts(self, article_ids: Collection[str]) -> dict[str, tuple[int, int]]:
        """(helpful, not helpful) per article that has feedback."""
        ...

    def set_kb_vote(self, article_id: str, visitor_id: str, helpful: bool, now: datetime) -> None:
        """A help-center visitor's vote on an article, replacing their earlier one."""
        ...

    def kb_vote(self, article_id: str, visitor_id: str) -> bool | None: ...

    def add_kb_query(self, query: KbQuery) -> None: ...
    def kb_feedback_given(self, article_id: str, conversation_id: int) -> bool:
        """Whether the conversation has voted on the article already."""
        ...

    def kb_queries(
        self, outcomes: Collection[KbOutcome], since: datetime, limit: int
    ) -> list[KbQuery]:
        """The newest `limit` questions with these outcomes asked since `since`."""
        ...

    def kb_synonyms(self) -> list[list[str]]: ...
    def set_kb_synonyms(self, groups: Sequence[Sequence[str]]) -> None: ...
    def kb_suggestion(self, article_id: str, normalized: str) -> KbSuggestion | None: ...
    def kb_suggestions_by_id(self, ids: Collection[int]) -> list[KbSuggestion]:
        """These suggestions (locked for update where the database can), by id."""
        ...

    def kb_suggestions(self, flt: SuggestionFilter) -> list[KbSuggestion]: ...
    def kb_suggestion_counts(self, status: str = "pending") -> dict[str, int]:
        """Suggestions in `status` per article that has any."""
        ...

    def save_kb_suggestion(self, suggestion: KbSuggestion) -> KbSuggestion:
        """Insert (id None) or update; returns it with its id."""
        ...

    # routing
    def agent_routings(self) -> list[AgentRouting]:
        """Every agent's routing profile and presence (active agents only)."""
        ...

    def save_agent_routing(self, routing: AgentRouting) -> None:
        """Insert or replace the agent's profile and presence."""
        ...

    def routing_policy(self) -> str | None:
        """The stored routing policy source, or None when none was saved."""
        ...

    def save_routing_policy(self, source: str, agent_id: int | None) -> None: ...


class Store(Protocol):
    """The repository port: runs units of work off the event loop, one transaction each."""

    async def write(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run `fn` in its own transaction and commit; publish the events it appended."""
        ...

    async def write_batched(
        self, fn: Callable[[UnitOfWork, list[ItemT]], list[T | Exception]], item: ItemT
    ) -> T:
        """Store `item` together with other items queued meanwhile (group commit).

        `fn` runs once per batch, in one transaction, on every item queued with the same `fn`,
        and returns one result, or the exception to raise, per item in order. The call
        resolves only after the shared commit is durable. If `fn` raises or the commit fails,
        the batch is rolled back and each item is tried again alone. For the hot inbound path.
        """
        ...

    async def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run a read-only `fn`; may run concurrently with writes."""
        ...

    async def ping(self) -> None:
        """Raise if the database does not answer."""
        ...


# --- knowledge base ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KbArticle:
    """What the search index holds of one published article (the database is the truth)."""

    id: str
    language: str  # "en" or "zh"
    title: str
    body: str  # Markdown source
    questions: tuple[str, ...] = ()  # alternate questions: how customers actually ask
    short_answer: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KbHit:
    article_id: str
    title: str
    language: str
    score: float  # higher is better; the fused score the answer decision uses
    highlight: str  # HTML-escaped snippet with matched terms in <mark>
    short_answer: str | None = None


@dataclass(frozen=True, slots=True)
class KbResult:
    query: str
    hits: list[KbHit]
    answer: KbHit | None  # the hit the bot would answer with; None means escalate
    suggestion: str | None = None  # a corrected query when nothing matched
    # Whether the semantic stage scored the query (False: BM25 only); None when the index does
    # not say. The bot's answer thresholds are per language and this mode (bot/policy.py).
    semantic: bool | None = None


class KnowledgeIndex(Protocol):
    """The derived, rebuildable search index over published articles.

    Synchronous and blocking (index writes, embeddings): callers run it on a worker thread,
    never on the event loop. Implementations must be safe for concurrent searches while one
    thread writes.
    """

    def search(self, query: str, language: str | None = None, limit: int = 10) -> KbResult:
        """Ranked hits for a customer question; raises ValueError for an unusable query."""
        ...

    def upsert(self, articles: Sequence[KbArticle]) -> None:
        """Add or replace articles (by id)."""
        ...

    def remove(self, article_ids: Sequence[str]) -> None: ...

    def rebuild(
        self, articles: Sequence[KbArticle], progress: Callable[[int], None] | None = None
    ) -> None:
        """Replace the whole index with these articles; `progress(n)` after each n done."""
        ...

    def article_ids(self) -> set[str]: ...

    def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        """Words or phrases that mean the same; applied at query time (no reindex)."""
        ...

    def group_similar(self, texts: Sequence[str]) -> list[list[int]]:
        """Cluster questions (indexes into `texts`), largest group first; for the gap report."""
        ...


# --- event bus --------------------------------------------------------------------------------


class BusEnvelope(TypedDict):
    """What travels on the event bus between hub processes (JSON-serialisable)."""

    kind: str  # an EventKind value, or "typing"
    conversation_id: int | None
    data: dict[str, Any]
    origin: str  # node id of the publishing process


BusHandler = Callable[[BusEnvelope], Awaitable[None] | None]


class EventBus(Protocol):
    """Fan-out of committed events (and ephemeral ones such as typing) to every subscriber
    in every hub process sharing the same database."""

    node_id: str

    def publish(self, envelope: BusEnvelope) -> None:
        """Queue for delivery; never blocks the caller."""
        ...

    def subscribe(self, handler: BusHandler) -> Callable[[], None]:
        """Call `handler` for every envelope; returns the unsubscribe function."""
        ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...


# --- channels ---------------------------------------------------------------------------------


class AttachmentStore(Protocol):
    """Where attachment bytes live (the database keeps only `Attachment` metadata).

    Keys are opaque and content-addressed: saving the same bytes twice stores them once.
    """

    max_bytes: int

    async def save(self, data: bytes, filename: str, content_type: str) -> Attachment:
        """Store `data`; raises TooLarge (`attachment_too_large`) above `max_bytes`."""
        ...

    async def read(self, storage_key: str) -> bytes:
        """The stored bytes; raises NotFound (`unknown_attachment`)."""
        ...

    def path(self, storage_key: str) -> Path:
        """The file holding the bytes (for streaming); raises NotFound like `read`."""
        ...


class InboundSink(Protocol):
    """What a channel adapter hands normalised inbound messages to (the conversation service)."""

    async def receive(self, message: InboundMessage) -> Message:
        """Store the message durably (idempotent on channel_message_id) and return it."""
        ...

    def opening_status(self, inbox: str) -> ConversationStatus:
        """The status a new conversation on `inbox` starts in (BOT where the bot answers
        first), for channels that open conversations themselves."""
        ...


@dataclass(frozen=True, slots=True)
class SendResult:
    state: DeliveryState
    channel_message_id: str | None = None
    detail: str | None = None


class Channel(Protocol):
    """A channel adapter: turns a channel's traffic into InboundMessages and sends replies.

    Implementations are registered by name in `channels.REGISTRY`. Richer content falls back
    to text (Rasa's output-channel rule). An adapter may also declare `sends_for`, a tuple of
    other channel names whose outbound messages it delivers (email delivers `fax` replies
    through the fax gateway); the composition root routes those to it.
    """

    name: ClassVar[str]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...

    async def send(self, conversation: Conversation, message: Message) -> SendResult:
        """Deliver one outbound message; raise ChannelSendError for a retryable failure."""
        ...


@dataclass(frozen=True)
class ChannelContext:
    """What the composition root hands every channel adapter."""

    sink: InboundSink
    store: Store
    bus: EventBus
    max_text_chars: int
    public_url: str
    default_inbox: str
    options: dict[str, Any]  # channel-specific settings: `channels.<name>` in the config
    attachments: AttachmentStore
    data_dir: Path
    calls: CallControl | None = None  # the call controller, for the phone channel


class ChannelSendError(Exception):
    """A send failed; `retryable` tells the outbox whether to try again later."""

    def __init__(self, detail: str, *, retryable: bool = True, retry_after: float | None = None):
        super().__init__(detail)
        self.retryable = retryable
        # The peer said when to come back (Telegram's RetryAfter, SMTP 4xx with a delay):
        # the outbox waits this long instead of its own backoff.
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Invite:
    """A link that lets a contact the hub knows continue on another channel as themselves."""

    channel: str
    inbox: str
    url: str
    expires_at: datetime


@runtime_checkable
class InvitingChannel(Protocol):
    """A channel that can invite a known contact over (Telegram's /start deep links)."""

    async def invite(self, contact_id: int, inbox: str | None = None) -> Invite:
        """A fresh invite; NotFound for an unknown contact or inbox, Unavailable while the
        channel is still connecting."""
        ...


class SpeechToText(Protocol):
    """Speech recognition shared by the voice channels (Telegram voice notes, the phone line).

    Implementations do the blocking work off the event loop and load their model once.
    """

    async def transcribe(self, audio: bytes) -> str:
        """The words spoken in `audio` (any common container: OGG/Opus, WAV, MP3); "" when
        none are recognised; ValueError when the audio cannot be decoded."""
        ...


@dataclass(frozen=True, slots=True)
class Heard:
    """What a live recogniser noticed in the audio fed so far."""

    kind: Literal["speech", "partial", "final"]
    # speech: the caller started speaking (voice activity; for barge-in), text "";
    # partial: the words so far of the current utterance (a live caption; may still change);
    # final: the utterance is over (end of speech); its words, "" when none were recognised.
    text: str = ""
    confidence: float | None = None  # of a final result, 0..1, where the engine gives one


class SpeechStream(Protocol):
    """One caller's recogniser: created per call (or per menu step), fed in real time."""

    async def feed(self, pcm: bytes) -> list[Heard]:
        """Recognise `pcm` (16-bit mono at the stream's rate); what was noticed in it. Cheap
        on silence: voice-activity detection keeps silent audio away from the recogniser."""
        ...

    async def finish(self) -> Heard | None:
        """The final result of an utterance still open (the caller hung up mid-sentence)."""
        ...

    def close(self) -> None: ...


class LiveSpeechToText(Protocol):
    """Streaming speech recognition for live calls; the model per language is loaded once
    and shared by every call's stream."""

    def languages(self) -> frozenset[str]:
        """The languages a model is configured for ("ko", "en", "zh", ...)."""
        ...

    def stream(
        self, *, sample_rate: int, language: str | None = None, grammar: Sequence[str] = ()
    ) -> SpeechStream:
        """A new recogniser. With `grammar`, only those phrases (menu choices: "one",
        "agent", "상담원") can be recognised, and anything else is "" (Vosk's "[unk]").
        A language without a model raises LookupError."""
        ...


class TextToSpeech(Protocol):
    """Speech synthesis for live calls (pyttsx3 over espeak-ng, offline)."""

    async def synthesize(
        self, text: str, *, sample_rate: int, language: str | None = None, cache: bool = False
    ) -> bytes:
        """`text` spoken in a voice for `language`, as 16-bit mono PCM at `sample_rate`.
        `cache=True` for fixed prompts (menus, greetings): rendered once, then reused."""
        ...


# --- the front-line bot -----------------------------------------------------------------------


class BotKnowledge(Protocol):
    """The knowledge base as the bot sees it: the one port its actions use besides rasa-sdk.

    The hub implements it over the article service, so every question the bot asks is recorded
    for the content-gap report like any other.
    """

    async def search(self, query: str, language: str | None, limit: int) -> KbResult:
        """Ranked published articles for a customer question; ValueError for an unusable one."""
        ...

    async def article(self, article_id: str) -> KbArticle | None:
        """A published article, or None when it is not (any more)."""
        ...

    async def feedback(self, article_id: str, helpful: bool, conversation_id: int | None) -> None:
        """Count a "did this help?" answer on the article; ValueError for an unknown article."""
        ...

    def article_url(self, article_id: str) -> str:
        """Where a customer can read the article."""
        ...


class FrontLineBot(Protocol):
    """The bot plugin as the hub drives it, in Rasa's action-server terms.

    Payloads are Rasa's: an action call `{"next_action", "sender_id", "tracker", "domain",
    "version"}` in, `{"events", "responses"}` out. `next_action` stands in for Rasa's dialogue
    policy when the hub runs the bot in-process; an external Rasa assistant picks actions
    itself and calls `run_external` through the hub's `/webhook`.
    """

    def next_action(self, tracker: dict[str, Any]) -> str:
        """The action to run for the tracker's latest user message."""
        ...

    async def run(self, action_call: dict[str, Any]) -> dict[str, Any]:
        """Run one action for the hub's own conversations."""
        ...

    async def run_external(self, action_call: dict[str, Any]) -> dict[str, Any] | None:
        """Run one action for an external Rasa server; raises rasa-sdk's exceptions
        (unknown action, rejected action, missing domain) for the endpoint to map."""
        ...

    def action_names(self) -> list[str]: ...
