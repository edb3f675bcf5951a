"""Learning from traffic (issue #22): customer questions proposed as alternate questions of
the articles that answered them, for content staff to accept or reject.

Three moments teach the knowledge base how customers really ask:

- `choice`: the customer picked an article among the bot's choices; the question is the one
  the customer asked before the choices were offered (not the choice's title);
- `helpful`: the customer said the bot's answer helped; the question is the one that led to
  that answer;
- `agent`: an agent answered a handed-off conversation with a link to an article (the inbox's
  "Insert article"); the question is the customer's last question the bot searched for before
  the hand-off.

The recorder follows this process's committed events on the bus (as the bot runner does, so
several hub processes never record twice) and works out the question from the conversation's
own event log. A suggestion is deduplicated per article on its normalised text; seeing it again
counts once per conversation and keeps the sources and the latest conversation links. A question
already among the article's questions (or its title) is not proposed; over-long or wordless
ones are dropped; an article keeps at most MAX_PENDING_PER_ARTICLE open suggestions.

Nothing reaches an article until a person accepts: accepting adds the questions as alternate
questions in a new article version through the editor's own versioning (`articles.do_update`),
the index follows as after any edit, and the event log records who accepted or rejected what.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import unicodedata
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from hub import model
from hub.errors import NotFound, ValidationFailed
from hub.model import (
    Article,
    ArticleStatus,
    AuthorKind,
    Event,
    EventKind,
    utcnow,
)
from hub.ports import BusEnvelope, EventBus, KbSuggestion, Store, SuggestionFilter, UnitOfWork
from hub.services import articles as kb
from hub.services.kb_index import IndexKeeper

log = logging.getLogger(__name__)

MAX_SUGGESTION_CHARS = 300  # longer is a story, not a question to match on
MIN_SUGGESTION_CHARS = 3
MAX_PENDING_PER_ARTICLE = 200
MAX_LINKS = 20  # conversation ids kept per suggestion (the latest)
MAX_DECIDE = 500  # suggestions accepted or rejected in one request
MAX_CLUSTER_QUESTIONS = 50
MAX_LIST = 500
DRAFT_BODY = {
    "en": "Write the answer here.",
    "zh": "请在此填写答案。",
}
# A link to an article in the help center, as "Insert article" and the bot write it.
_ARTICLE_LINK = re.compile(r"/help/articles/([^\s)\]>\"'?#/]{1,300})")
_TRAILING = re.compile(r"[\s\.\?!。？！…,，;；:：]+$")
_SEARCHED = frozenset({"answer", "clarify", "escalate"})


class Source(enum.StrEnum):
    CHOICE = "choice"
    HELPFUL = "helpful"
    AGENT = "agent"


class Status(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Proposed(enum.StrEnum):
    """What became of a proposed question."""

    ADDED = "added"
    COUNTED = "counted"  # seen before: counted again
    SAME_CONVERSATION = "same_conversation"  # seen before in this conversation: not counted
    KNOWN = "known"  # already one of the article's questions
    UNUSABLE = "unusable"  # empty, too short or too long
    NO_ARTICLE = "no_article"
    FULL = "full"  # the article has MAX_PENDING_PER_ARTICLE open suggestions


@dataclass(frozen=True, slots=True)
class SuggestionView:
    suggestion: KbSuggestion
    article_title: str
    article_status: ArticleStatus
    article_language: str


@dataclass(frozen=True, slots=True)
class SuggestionList:
    suggestions: list[SuggestionView]
    pending: dict[str, int]  # open suggestions per article (all articles)


@dataclass(frozen=True, slots=True)
class Decided:
    count: int  # suggestions accepted or rejected
    articles: dict[str, int]  # article id -> its version afterwards (accepted only)


def normalise(question: str) -> str:
    """The deduplication key: Unicode-compatible forms folded (full-width to ASCII), case
    folded, whitespace collapsed, trailing punctuation dropped."""
    text = model.one_line(unicodedata.normalize("NFKC", question)).casefold()
    return _TRAILING.sub("", text)


def usable(question: str) -> str | None:
    """The question on one line, or None when it cannot be an alternate question."""
    if len(question) > MAX_SUGGESTION_CHARS * 4:  # refuse huge input before scanning it
        return None
    text = model.one_line(question)
    key = normalise(text)
    # NFKC can lengthen text (one ligature becomes many letters): the key is bounded too.
    if not MIN_SUGGESTION_CHARS <= len(text) <= MAX_SUGGESTION_CHARS:
        return None
    if not 2 <= len(key) <= MAX_SUGGESTION_CHARS:
        return None
    if not any(c.isalnum() for c in key):
        return None
    return text


def _known(article: Article) -> set[str]:
    return {normalise(q) for q in (article.content.title, *article.content.questions)}


# --- units of work (storage thread) ------------------------------------------------------------


def do_propose(
    uow: UnitOfWork,
    article_id: str,
    question: str,
    source: Source,
    conversation_id: int | None,
    now: datetime,
) -> Proposed:
    """Record `question` as a suggestion for the article (never touching the article)."""
    text = usable(question)
    if text is None:
        return Proposed.UNUSABLE
    article = uow.article(article_id)
    if article is None:
        return Proposed.NO_ARTICLE
    key = normalise(text)
    if key in _known(article):
        return Proposed.KNOWN
    found = uow.kb_suggestion(article_id, key)
    links: tuple[int, ...] = (conversation_id,) if conversation_id is not None else ()
    if found is None:
        if uow.kb_suggestion_counts().get(article_id, 0) >= MAX_PENDING_PER_ARTICLE:
            return Proposed.FULL
        uow.save_kb_suggestion(
            KbSuggestion(None, article_id, text, key, 1, (source.value,), links,
                         Status.PENDING.value, now, now)
        )  # fmt: skip
        return Proposed.ADDED
    sources = tuple(dict.fromkeys((*found.sources, source.value)))
    again = conversation_id is not None and conversation_id in found.conversation_ids
    links = found.conversation_ids
    if conversation_id is not None and not again:
        links = (*links, conversation_id)[-MAX_LINKS:]
    uow.save_kb_suggestion(
        replace(
            found,
            count=found.count if again else found.count + 1,
            sources=sources,
            conversation_ids=links,
            last_seen_at=now,
        )
    )
    return Proposed.SAME_CONVERSATION if again else Proposed.COUNTED


def _pending(uow: UnitOfWork, ids: Collection[int]) -> list[KbSuggestion]:
    if not ids:
        raise ValidationFailed("choose at least one suggestion", code="no_suggestions")
    if len(ids) > MAX_DECIDE:
        raise ValidationFailed(
            f"{len(ids)} suggestions; at most {MAX_DECIDE} at once", code="too_many_suggestions"
        )
    found = uow.kb_suggestions_by_id(ids)
    missing = set(ids) - {s.id for s in found}
    if missing:
        raise NotFound(f"no suggestion {min(missing)}", code="unknown_suggestion")
    # Already decided (a second click, a colleague): nothing to do for those.
    return [s for s in found if s.status == Status.PENDING.value]


def _decided(uow: UnitOfWork, s: KbSuggestion, status: Status, actor: int, now: datetime) -> None:
    uow.save_kb_suggestion(replace(s, status=status.value, decided_at=now, decided_by=actor))
    kind = (
        EventKind.KB_SUGGESTION_ACCEPTED
        if status is Status.ACCEPTED
        else EventKind.KB_SUGGESTION_REJECTED
    )
    payload = {
        "suggestion": {"id": s.id, "question": s.question, "count": s.count,
                       "sources": list(s.sources)},
        "article_id": s.article_id,
    }  # fmt: skip
    uow.append_event(kind, None, payload, AuthorKind.AGENT, actor)


def do_accept(uow: UnitOfWork, ids: Collection[int], actor_id: int) -> tuple[Decided, set[str]]:
    """Add the questions to their articles (one new version per article) and mark them
    accepted; returns what was decided and the articles the index must follow."""
    now = utcnow()
    chosen = _pending(uow, ids)
    by_article: dict[str, list[KbSuggestion]] = {}
    for s in chosen:
        by_article.setdefault(s.article_id, []).append(s)
    versions: dict[str, int] = {}
    reindex: set[str] = set()
    for article_id, items in by_article.items():
        article = uow.article(article_id, for_update=True)
        if article is None:
            raise NotFound(f"no article {article_id!r}", code="unknown_article")
        known = _known(article)
        added = [s.question for s in items if s.normalized not in known]
        c = article.content
        content = model.article_content(
            title=c.title,
            body=c.body,
            questions=[*c.questions, *added],
            short_answer=c.short_answer,
            language=c.language,
            tags=c.tags,
        )
        change = kb.do_update(uow, article_id, content, article.version, actor_id)
        versions[article_id] = change.article.version
        if change.indexed:
            reindex.add(article_id)
        for s in items:
            _decided(uow, s, Status.ACCEPTED, actor_id, now)
    return Decided(len(chosen), versions), reindex


def do_reject(uow: UnitOfWork, ids: Collection[int], actor_id: int) -> Decided:
    now = utcnow()
    chosen = _pending(uow, ids)
    for s in chosen:
        _decided(uow, s, Status.REJECTED, actor_id, now)
    return Decided(len(chosen), {})


# --- where a question comes from (the conversation's event log) ---------------------------------


def _message_id(decision: dict[str, Any]) -> int | None:
    key = str(decision.get("key") or "")
    head, _, tail = key.partition(":")
    return int(tail) if head == "message" and tail.isdigit() else None


def _decisions_before(events: Sequence[Event], key: str | None) -> list[dict[str, Any]]:
    """The bot's decisions, oldest first, up to (not including) the one with `key`."""
    out: list[dict[str, Any]] = []
    for ev in events:
        if ev.kind is not EventKind.BOT_DECISION:
            continue
        if key is not None and ev.payload.get("key") == key:
            break
        out.append(dict(ev.payload))
    return out


def _asked_before_choice(earlier: list[dict[str, Any]]) -> int | None:
    for d in reversed(earlier):
        if d.get("decision") == "clarify":
            return _message_id(d)
    return None


def teaches(decision: dict[str, Any]) -> bool:
    """Whether a bot decision can teach a question: an article chosen among the bot's
    choices, or a "yes, it helped"."""
    if not decision.get("article_id"):
        return False
    kind = decision.get("decision")
    chosen = kind == "answer" and decision.get("reason") == "chosen"
    return chosen or (kind == "feedback" and decision.get("helpful") is True)


def question_for(
    events: Sequence[Event], decision: dict[str, Any]
) -> tuple[str, Source, int | None] | None:
    """(article id, source, message id of the customer's question if known) that a bot decision
    teaches, or None when it teaches nothing."""
    article_id = decision.get("article_id")
    if not isinstance(article_id, str) or not article_id:
        return None
    earlier = _decisions_before(events, str(decision.get("key") or ""))
    kind = decision.get("decision")
    if kind == "answer" and decision.get("reason") == "chosen":
        return article_id, Source.CHOICE, _asked_before_choice(earlier)
    if kind == "feedback" and decision.get("helpful") is True:
        for d in reversed(earlier):
            if d.get("decision") == "answer" and d.get("article_id") == article_id:
                if d.get("reason") == "chosen":
                    return article_id, Source.HELPFUL, _asked_before_choice(earlier)
                return article_id, Source.HELPFUL, _message_id(d)
    return None


def question_before_handoff(events: Sequence[Event]) -> int | str | None:
    """The customer's question before the conversation was handed to people: the message id
    of the last question the bot searched for, else the last line of the hand-off summary
    (the customer's questions, when they asked for a person at once); None when the
    conversation was never handed off or no question is known."""
    searched: int | None = None
    for ev in events:
        if ev.kind is EventKind.BOT_DECISION:
            steps = ev.payload.get("steps") or [ev.payload]
            if any(s.get("decision") in _SEARCHED for s in steps if isinstance(s, dict)):
                searched = _message_id(dict(ev.payload)) or searched
        elif ev.kind is EventKind.CONVERSATION_UPDATED and "handoff" in ev.payload:
            if searched is not None:
                return searched
            handoff = ev.payload.get("handoff") or {}
            summary = handoff.get("summary") if isinstance(handoff, dict) else None
            lines = str(summary or "").splitlines()
            # A shortened line ("…") is not the customer's question as asked.
            return lines[-1] if lines and not lines[-1].endswith("…") else None
    return None


def linked_articles(text: str) -> list[str]:
    """Article ids linked from a message (help-center article links), in order, once each."""
    ids = (unquote(m.group(1)) for m in _ARTICLE_LINK.finditer(text[:20_000]))
    return list(dict.fromkeys(i for i in ids if i))


def _learn_from_decision(uow: UnitOfWork, conversation_id: int, data: dict[str, Any]) -> None:
    found = question_for(uow.events(conversation_id), data)
    if found is None:
        return
    article_id, source, message_id = found
    msg = uow.message(message_id) if message_id is not None else None
    if msg is None or msg.conversation_id != conversation_id:
        return
    do_propose(uow, article_id, msg.text, source, conversation_id, utcnow())


def _learn_from_reply(uow: UnitOfWork, conversation_id: int, text: str) -> None:
    article_ids = linked_articles(text)
    if not article_ids:
        return
    found = question_before_handoff(uow.events(conversation_id))
    if isinstance(found, int):
        msg = uow.message(found)
        found = msg.text if msg is not None and msg.conversation_id == conversation_id else None
    if found is None:
        return
    for article_id in article_ids:
        do_propose(uow, article_id, found, Source.AGENT, conversation_id, utcnow())


# --- the service (event loop side) ---------------------------------------------------------------


class SuggestionService:
    """Records suggestions from traffic and lets content staff decide on them."""

    def __init__(self, store: Store, keeper: IndexKeeper, articles: kb.ArticleService):
        self.store = store
        self.keeper = keeper
        self.articles = articles
        self._tasks: set[asyncio.Task[None]] = set()

    # --- recording ----------------------------------------------------------------------------

    async def propose(
        self, article_id: str, question: str, source: Source, conversation_id: int | None
    ) -> Proposed:
        """Propose a question for an article directly (imports, tests, other callers)."""
        return await self.store.write(
            lambda uow: do_propose(uow, article_id, question, source, conversation_id, utcnow())
        )

    def follow(self, bus: EventBus) -> Callable[[], None]:
        """Learn from this process's committed bot decisions and agent replies."""
        node = bus.node_id

        def on_event(envelope: BusEnvelope) -> None:
            conversation_id = envelope["conversation_id"]
            if envelope["origin"] != node or conversation_id is None:
                return
            kind, data = envelope["kind"], envelope["data"]
            if kind == EventKind.BOT_DECISION.value and teaches(data):
                self._spawn(lambda uow: _learn_from_decision(uow, conversation_id, data))
            elif kind == EventKind.MESSAGE_CREATED.value:
                message = data.get("message") or {}
                text = message.get("text")
                if message.get("author") == AuthorKind.AGENT.value and isinstance(text, str):
                    if "/help/articles/" in text:
                        self._spawn(lambda uow: _learn_from_reply(uow, conversation_id, text))

        return bus.subscribe(on_event)

    def _spawn(self, fn: Callable[[UnitOfWork], None]) -> None:
        task = asyncio.create_task(self._record(fn), name="omnihub-kb-suggestion")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _record(self, fn: Callable[[UnitOfWork], None]) -> None:
        try:
            await self.store.write(fn)
        except Exception:  # learning is a side line: a failure must not touch the conversation
            log.exception("recording a knowledge-base suggestion failed")

    async def drain(self) -> None:
        """Wait for the suggestions being recorded (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # --- reading and deciding -----------------------------------------------------------------

    async def list(self, flt: SuggestionFilter) -> SuggestionList:
        if not 1 <= flt.limit <= MAX_LIST:
            raise ValidationFailed(f"limit must be 1 to {MAX_LIST}", code="invalid_limit")

        def run(uow: UnitOfWork) -> SuggestionList:
            found = uow.kb_suggestions(flt)
            titles: dict[str, Article | None] = {}
            views = []
            for s in found:
                if s.article_id not in titles:
                    titles[s.article_id] = uow.article(s.article_id)
                a = titles[s.article_id]
                if a is not None:
                    c = a.content
                    views.append(SuggestionView(s, c.title, a.status, c.language))
            return SuggestionList(views, uow.kb_suggestion_counts())

        return await self.store.read(run)

    async def accept(self, ids: Sequence[int], actor_id: int) -> Decided:
        """Accept these suggestions: their questions join their articles in new versions."""
        decided, reindex = await self.store.write(lambda uow: do_accept(uow, set(ids), actor_id))
        if reindex:
            await self.keeper.refresh(reindex)
        return decided

    async def reject(self, ids: Sequence[int], actor_id: int) -> Decided:
        return await self.store.write(lambda uow: do_reject(uow, set(ids), actor_id))

    async def draft_from_cluster(
        self, questions: Sequence[str], language: str | None, actor_id: int
    ) -> Article:
        """A draft article for a cluster of unanswered questions: the most common question
        (the first) as its title, all of them as alternate questions. Never published here."""
        clean = list(dict.fromkeys(q for q in (usable(x) for x in questions) if q))
        if not clean:
            raise ValidationFailed("the cluster has no usable question", code="empty_cluster")
        clean = clean[:MAX_CLUSTER_QUESTIONS]
        lang = model.article_language(language) if language else _language_of(clean[0])
        title = clean[0][: model.MAX_TITLE]
        title = title[:1].upper() + title[1:]
        content = model.article_content(
            title=title,
            body=DRAFT_BODY[lang],
            questions=clean,
            language=lang,
        )
        item = kb.ArticleInput(content, status=ArticleStatus.DRAFT)
        return await self.articles.create(item, actor_id)


def _language_of(text: str) -> str:
    return "zh" if re.search(r"[\u3400-\u9fff]", text) else "en"
