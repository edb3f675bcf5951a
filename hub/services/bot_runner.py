"""Runs the front-line bot in-process: after a customer's message is stored, never on the way.

The runner follows committed events on the bus. A customer message on a conversation in BOT
status (or the reply to a CSAT question) becomes a bot turn; an agent resolving a conversation
becomes a CSAT question. A turn builds a Rasa tracker from the conversation (its messages, the
bot's state from its last `bot.decision` event, and context from the inbox rules), asks the bot
which action to run, runs it through rasa-sdk's executor (following `FollowupAction`s), and
stores the outcome in one transaction (`do_bot_turn`): the replies (sent through the outbox,
like agent replies), the decision explained, the new state, and a hand-off or a rating.

Nothing is lost across a restart: the customer message is stored before the bot sees it, and
at start-up every BOT conversation whose last message is an unanswered customer message gets
its turn (`resume`). A turn is keyed by its trigger and stored at most once, so a turn run
twice (two processes resuming, a retry) answers once. A turn that fails hands the conversation
to people instead of leaving it with a bot that never answers.

Only the process that stored the message runs its turn (events carry their origin), so
several hub processes sharing a database do not answer twice.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from hub.channel_names import PHONE_NUMBER_CHANNELS
from hub.errors import NotFound, ValidationFailed
from hub.inboxes import InboxBot
from hub.model import (
    AccessibilityNeed,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    Direction,
    EventKind,
    KbSource,
    Message,
    article_language,
    clean_query,
    utcnow,
)
from hub.ports import (
    BotKnowledge,
    BusEnvelope,
    ConversationFilter,
    EventBus,
    FrontLineBot,
    KbArticle,
    KbResult,
    Store,
    UnitOfWork,
)
from hub.services.articles import ArticleService
from hub.services.conversations import BotReply, BotTurn, ConversationService, bot_turn_answered
from hub.services.kb_index import kb_article

log = logging.getLogger(__name__)

MAX_FOLLOWUPS = 5  # actions chained in one turn (answer -> hand off -> ...)
HISTORY = 20  # messages put on the tracker
RESUME_LIMIT = 1000
RASA_VERSION = "3.1.0"
_DEFAULT_VISITOR = re.compile(r"^Visitor [0-9A-F]{4}$")  # the web chat's name for the nameless
# Slots the runner fills from the conversation and the inbox rules before every turn, and
# slots it reads back; everything else the actions set is the bot's state, kept for next turn.
CONTEXT_SLOTS = frozenset(
    {
        "conversation_id",
        "channel",
        "language",
        "open_now",
        "opening_hours",
        "required_details",
        "known_details",
        "human_only_topics",
        "human_required",
    }
)
_OUTPUT_SLOTS = ("bot_decision", "csat")


class ArticleKnowledge:
    """The `BotKnowledge` port over the article service: the bot's questions are recorded
    for the content-gap report as `bot` questions."""

    def __init__(self, articles: ArticleService, public_url: str):
        self.articles = articles
        self.public_url = public_url.rstrip("/")

    async def search(self, query: str, language: str | None, limit: int) -> KbResult:
        try:
            return await self.articles.search(query, language, limit, KbSource.BOT)
        except ValidationFailed as exc:
            raise ValueError(exc.detail) from None

    async def article(self, article_id: str) -> KbArticle | None:
        found = await self.articles.published([article_id])
        return kb_article(found[0]) if found else None

    async def feedback(self, article_id: str, helpful: bool, conversation_id: int | None) -> None:
        try:
            await self.articles.feedback(article_id, helpful, conversation_id)
        except NotFound as exc:
            raise ValueError(exc.detail) from None

    def article_url(self, article_id: str) -> str:
        return f"{self.public_url}/help/articles/{quote(article_id, safe='')}"


@dataclass(frozen=True, slots=True)
class _Trigger:
    kind: str  # "message" | "resolved"
    key: str
    message_id: int | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    conversation: Conversation
    contact: Contact | None
    messages: list[Message]
    state: dict[str, Any]
    answered: bool


def _context(uow: UnitOfWork, conversation_id: int, key: str) -> _Context | None:
    conv = uow.conversation(conversation_id)
    if conv is None:
        return None
    state: dict[str, Any] = {}
    for ev in uow.events(conv.id):
        # Decisions without a state (a machine-made message ignored) keep the one before.
        if ev.kind is EventKind.BOT_DECISION and "state" in ev.payload:
            state = dict(ev.payload.get("state") or {})
    return _Context(
        conversation=conv,
        contact=uow.contact(conv.contact_id),
        messages=uow.messages(conv.id, limit=HISTORY),
        state=state,
        answered=bot_turn_answered(uow, conv.id, key),
    )


def known_details(contact: Contact | None) -> dict[str, str]:
    """What the hub already knows about the contact, so the bot does not ask again."""
    if contact is None:
        return {}
    known: dict[str, str] = {}
    if contact.display_name and not _DEFAULT_VISITOR.match(contact.display_name):
        known["name"] = contact.display_name
    for identity in contact.identities:
        if identity.channel == "email":
            known.setdefault("email", identity.address)
        elif identity.channel in PHONE_NUMBER_CHANNELS:
            known.setdefault("phone", identity.address)
    return known


def human_required(contact: Contact | None) -> bool:
    """The accessibility profile asks for a person: an interpreter language, or a cognitive
    need (slower pace and simpler language are a person's job, not the bot's)."""
    if contact is None:
        return False
    profile = contact.accessibility
    return bool(profile.interpreter_language) or AccessibilityNeed.COGNITIVE in profile.needs


def tracker_for(
    ctx: _Context, rules: InboxBot, latest: Message | None, now_open: bool
) -> dict[str, Any]:
    """A Rasa tracker (the action server's `tracker` payload) for the conversation."""
    conv, contact = ctx.conversation, ctx.contact
    context = {
        "conversation_id": conv.id,
        "channel": conv.channel,
        "language": conv.language or (contact.language if contact else None),
        "open_now": now_open,
        "opening_hours": rules.hours_text() or None,
        "required_details": list(rules.required_details),
        "known_details": known_details(contact),
        "human_only_topics": list(rules.human_only_topics),
        "human_required": human_required(contact),
    }
    events = [
        {
            "event": "user" if m.direction is Direction.INBOUND else "bot",
            "text": m.text,
            "timestamp": m.created_at.timestamp(),
        }
        for m in ctx.messages
    ]
    return {
        "sender_id": f"conversation-{conv.id}",
        "slots": {**ctx.state, **context},
        "latest_message": {"text": latest.text if latest else "", "intent": {}, "entities": []},
        "events": events,
        "paused": False,
        "followup_action": None,
        "active_loop": {},
        "latest_action_name": "action_listen",
    }


class BotRunner:
    """Follows the bus and runs bot turns, one at a time per conversation."""

    def __init__(
        self,
        bot: FrontLineBot,
        conversations: ConversationService,
        store: Store,
        rules: Callable[[str], InboxBot | None],
        *,
        concurrency: int = 8,
    ):
        self.bot = bot
        self.conversations = conversations
        self.store = store
        self.rules = rules
        self._queues: dict[int, deque[_Trigger]] = defaultdict(deque)
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(concurrency)
        self._node_id: str | None = None

    # --- wiring -------------------------------------------------------------------------------

    def follow(self, bus: EventBus) -> Callable[[], None]:
        """Start reacting to committed events of this process; returns the unsubscribe."""
        self._node_id = bus.node_id
        return bus.subscribe(self._on_bus)

    async def resume(self) -> int:
        """Give their turn to BOT conversations whose customer is waiting (after a restart)."""

        def run(uow: UnitOfWork) -> list[tuple[int, int]]:
            convs = uow.conversations(
                ConversationFilter(status=(ConversationStatus.BOT,), limit=RESUME_LIMIT)
            )
            last = uow.last_messages([c.id for c in convs])
            return [
                (c.id, m.id)
                for c in convs
                if (m := last.get(c.id)) is not None and m.author_kind is AuthorKind.CUSTOMER
            ]

        waiting = await self.store.read(run)
        for conversation_id, message_id in waiting:
            self._enqueue(conversation_id, _message_trigger(message_id))
        return len(waiting)

    async def drain(self) -> None:
        """Wait until every queued turn has run (tests, shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()  # the message is stored; `resume` picks the turn up next start
        await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    # --- events -------------------------------------------------------------------------------

    def _on_bus(self, envelope: BusEnvelope) -> None:
        conversation_id = envelope["conversation_id"]
        if envelope["origin"] != self._node_id or conversation_id is None:
            return
        data = envelope["data"]
        if envelope["kind"] == EventKind.MESSAGE_CREATED.value:
            message = data.get("message") or {}
            if message.get("author") == AuthorKind.CUSTOMER.value:
                self._enqueue(conversation_id, _message_trigger(int(message["id"])))
        elif envelope["kind"] == EventKind.CONVERSATION_UPDATED.value:
            status = (data.get("changes") or {}).get("status") or [None, None]
            conv = data.get("conversation") or {}
            bot_made = "csat" in data or "handoff" in data
            if status[1] == ConversationStatus.RESOLVED.value and not bot_made:
                key = f"resolved:{conv.get('resolved_at')}"
                self._enqueue(conversation_id, _Trigger("resolved", key))

    def _enqueue(self, conversation_id: int, trigger: _Trigger) -> None:
        self._queues[conversation_id].append(trigger)
        if conversation_id not in self._workers:
            self._workers[conversation_id] = asyncio.create_task(
                self._work(conversation_id), name=f"omnihub-bot-{conversation_id}"
            )

    async def _work(self, conversation_id: int) -> None:
        queue = self._queues[conversation_id]
        try:
            while queue:
                trigger = queue.popleft()
                async with self._slots:
                    await self._turn(conversation_id, trigger)
        finally:
            del self._workers[conversation_id]
            if not queue:
                self._queues.pop(conversation_id, None)

    # --- a turn -------------------------------------------------------------------------------

    async def _turn(self, conversation_id: int, trigger: _Trigger) -> None:
        ctx = await self.store.read(lambda uow: _context(uow, conversation_id, trigger.key))
        if ctx is None or ctx.answered:
            return
        conv = ctx.conversation
        rules = self.rules(conv.inbox)
        if rules is None:
            return
        if trigger.kind == "resolved":
            if not rules.csat or conv.status is not ConversationStatus.RESOLVED:
                return
            action, latest, needs_bot = "action_ask_csat", None, False
        else:
            latest = next((m for m in ctx.messages if m.id == trigger.message_id), None)
            if latest is None:
                return
            if conv.status is ConversationStatus.BOT:
                needs_bot = True
            elif ctx.state.get("pending") == "csat":
                needs_bot = False
            else:
                return  # a person has the conversation
            action = ""
        tracker = tracker_for(ctx, rules, latest, rules.is_open(utcnow()))
        try:
            turn = await self._run(conv, trigger, tracker, action, needs_bot)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in an action must not leave the customer with a dead bot
            log.exception("bot turn %s on conversation %d failed", trigger.key, conv.id)
            if not needs_bot:
                return
            turn = BotTurn(
                conv.id,
                trigger.key,
                (),
                {"decision": "handoff", "reason": "bot_error"},
                ctx.state,
                handoff={"reason": "bot_error"},
            )
        await self.conversations.bot_turn(turn)

    async def _run(
        self,
        conv: Conversation,
        trigger: _Trigger,
        tracker: dict[str, Any],
        action: str,
        needs_bot: bool,
    ) -> BotTurn:
        ran = await run_actions(self.bot, tracker, action)
        slots = ran.slots
        state = {
            k: v for k, v in slots.items() if k not in CONTEXT_SLOTS and k not in _OUTPUT_SLOTS
        }
        csat = slots.get("csat")
        return BotTurn(
            conv.id,
            trigger.key,
            ran.replies,
            ran.decision,
            state,
            handoff=dict(slots.get("handoff") or {"reason": "customer_request"})
            if ran.paused
            else None,
            csat=csat if isinstance(csat, int) and not isinstance(csat, bool) else None,
            needs_bot_status=needs_bot,
        )


@dataclass(frozen=True, slots=True)
class ActionsRun:
    """What the bot's actions did in one turn."""

    replies: tuple[BotReply, ...]
    decision: dict[str, Any]  # the last step's decision, with all `steps` when chained
    slots: dict[str, Any]  # the tracker's slots after the turn
    paused: bool  # handed to people (Rasa's ConversationPaused)


async def run_actions(bot: FrontLineBot, tracker: dict[str, Any], action: str = "") -> ActionsRun:
    """Run the bot on the tracker's latest message: `action`, or the one the bot picks,
    following `FollowupAction`s (at most MAX_FOLLOWUPS). The tracker's slots are updated."""
    slots: dict[str, Any] = tracker["slots"]
    action = action or bot.next_action(tracker)
    replies: list[BotReply] = []
    steps: list[dict[str, Any]] = []
    paused = False
    for _ in range(MAX_FOLLOWUPS):
        call = {
            "next_action": action,
            "sender_id": tracker["sender_id"],
            "tracker": tracker,
            "version": RASA_VERSION,
        }
        result = await bot.run(call)
        replies.extend(_replies(result.get("responses") or []))
        followup = None
        decision: dict[str, Any] = {}
        for event in result.get("events") or []:
            name = event.get("event")
            if name == "slot":
                slots[event["name"]] = event.get("value")
                if event["name"] == "bot_decision":
                    decision = dict(event.get("value") or {})
            elif name == "pause":
                paused = True
            elif name == "followup":
                followup = event.get("name")
        steps.append({"action": action, **decision})
        if not followup or paused:
            break
        action = followup
    explained = {**steps[-1], "steps": steps} if len(steps) > 1 else steps[-1]
    return ActionsRun(tuple(replies), explained, slots, paused)


class _ConsoleKnowledge(ArticleKnowledge):
    """The bot's knowledge for one console question: searches are recorded as console
    questions, in the language and at the length the console asked for; the result is kept."""

    def __init__(self, articles: ArticleService, public_url: str, language: str | None, limit: int):
        super().__init__(articles, public_url)
        self.language = language
        self.limit = limit
        self.result: KbResult | None = None
        self.error: ValidationFailed | None = None

    async def search(self, query: str, language: str | None, limit: int) -> KbResult:
        try:
            self.result = await self.articles.search(
                query, self.language, max(limit, self.limit), KbSource.CONSOLE
            )
        except ValidationFailed as exc:
            self.error = exc
            raise ValueError(exc.detail) from None
        return self.result

    async def feedback(self, article_id: str, helpful: bool, conversation_id: int | None) -> None:
        """A console question counts no votes."""


@dataclass(frozen=True, slots=True)
class ConsoleAnswer:
    """The bot's reply to a question asked in the knowledge-base editor's console."""

    result: KbResult  # what the knowledge base found (hits up to the console's limit)
    replies: tuple[BotReply, ...]  # what the customer would get, message by message
    decision: dict[str, Any]  # the bot's decision explained, as in the conversation log


class BotConsole:
    """ "Test the bot": a question answered as if it were a customer's first message on a
    channel, by the same actions and the same answer text as a live turn, without a
    conversation; the search is recorded as a console question."""

    def __init__(
        self,
        make_bot: Callable[[BotKnowledge], FrontLineBot],
        articles: ArticleService,
        public_url: str,
    ):
        self.make_bot = make_bot
        self.articles = articles
        self.public_url = public_url

    async def ask(
        self, question: str, language: str | None, channel: str, limit: int
    ) -> ConsoleAnswer:
        """ValidationFailed for an unusable question or language, as a search."""
        text = clean_query(question)
        lang = article_language(language) if language else None
        knowledge = _ConsoleKnowledge(self.articles, self.public_url, lang, limit)
        tracker = {
            "sender_id": "kb-console",
            "slots": {"channel": channel, "language": lang},
            "latest_message": {"text": text, "intent": {}, "entities": []},
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        }
        ran = await run_actions(self.make_bot(knowledge), tracker)
        if knowledge.error is not None:
            raise knowledge.error
        result = knowledge.result
        if result is None:  # the bot did not search (a hand-off): the console still lists hits
            result = await self.articles.search(text, lang, limit, KbSource.CONSOLE)
        return ConsoleAnswer(replace(result, hits=result.hits[:limit]), ran.replies, ran.decision)


def _message_trigger(message_id: int) -> _Trigger:
    return _Trigger("message", f"message:{message_id}", message_id)


def _replies(responses: list[dict[str, Any]]) -> list[BotReply]:
    out: list[BotReply] = []
    for r in responses:
        text = str(r.get("text") or "").strip()
        choices = tuple(
            {"title": str(b.get("title", "")), "payload": str(b.get("payload", b.get("title")))}
            for b in r.get("buttons") or []
            if isinstance(b, dict) and b.get("title")
        )
        if text:
            out.append(BotReply(text, choices))
    return out
