"""The knowledge-base service: articles and their workflow, versions, feedback, the questions
asked (and the content-gap report built from them), synonyms, and search.

Every change runs in one unit of work that also appends the event describing it; the index is
brought in step after the commit (see `hub.services.kb_index`). Search goes through `search`,
the one function the bot, the agent console and the help center share, so every question asked
is recorded the same way.
"""

from __future__ import annotations

import dataclasses
import enum
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hub import model
from hub.errors import HubError, NotFound, ValidationFailed
from hub.model import (
    CONTENT_FIELDS,
    Agent,
    Article,
    ArticleContent,
    ArticleStatus,
    ArticleVersion,
    AuthorKind,
    EventKind,
    KbOutcome,
    KbQuery,
    KbSource,
    utcnow,
)
from hub.ports import ArticleFilter, KbResult, Store, UnitOfWork
from hub.services.kb_index import IndexKeeper

MAX_SEARCH_LIMIT = 50
GAP_QUERY_LIMIT = 5000  # newest unanswered questions a gap report looks at
GAP_QUESTIONS_SHOWN = 20
MAX_SYNONYM_GROUPS = 500
MAX_SYNONYMS_PER_GROUP = 20
MAX_SYNONYM_CHARS = 100
# A help-center hit with no word of the question in it is still shown from this fused score
# on (the bot answers from 0.47; unrelated articles score under 0.2 on the demo FAQ).
RELATED_SCORE = 0.4


@dataclass(frozen=True, slots=True)
class ArticleInput:
    """A new article or an imported one; `id` None means "make one from the title"."""

    content: ArticleContent
    id: str | None = None
    status: ArticleStatus | None = None


@dataclass(frozen=True, slots=True)
class ArticleView:
    article: Article
    helpful: int = 0
    not_helpful: int = 0
    updated_by: Agent | None = None


@dataclass(frozen=True, slots=True)
class VersionView:
    version: ArticleVersion
    author: Agent | None


@dataclass(frozen=True, slots=True)
class GapGroup:
    """Similar questions the knowledge base could not answer."""

    example: str
    questions: list[str]
    count: int
    last_asked_at: datetime


@dataclass(frozen=True, slots=True)
class HelpResults:
    """What the help center shows for a question: the articles found (best first, in any
    language) and a corrected question when nothing matched."""

    articles: list[Article]
    suggestion: str | None


class ImportResult(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class Imported:
    result: ImportResult
    article_id: str
    indexed: bool  # the index has to be refreshed for it


@dataclass(frozen=True, slots=True)
class _Change:
    """A committed change: the article after it, and whether the index must follow."""

    article: Article
    indexed: bool


def _unknown_article(article_id: str) -> NotFound:
    return NotFound(f"no article {article_id!r}", code="unknown_article")


def _article_ref(article: Article) -> dict[str, Any]:
    return {
        "id": article.id,
        "version": article.version,
        "status": article.status.value,
        "language": article.content.language,
        "title": article.content.title,
    }


def _touches_index(before: ArticleStatus | None, after: ArticleStatus) -> bool:
    return ArticleStatus.PUBLISHED in (before, after)


def new_article_id(title: str) -> str:
    """A slug of the title plus a short random suffix (ids are never reused)."""
    return f"{model.slugify(title) or 'article'}-{secrets.token_hex(3)}"


def synonym_groups(groups: Sequence[Sequence[str]]) -> list[list[str]]:
    """Validated, normalised synonym groups (lower case, trimmed, no duplicates)."""
    if len(groups) > MAX_SYNONYM_GROUPS:
        raise ValidationFailed(
            f"{len(groups)} synonym groups; the limit is {MAX_SYNONYM_GROUPS}",
            code="invalid_synonyms",
        )
    clean: list[list[str]] = []
    for n, group in enumerate(groups, 1):
        # NFKC: full-width letters (ｘｙｋ, typed with a Chinese input method) as ASCII.
        found = (model.one_line(unicodedata.normalize("NFKC", t)).lower() for t in group)
        terms = list(dict.fromkeys(t for t in found if t))
        if len(terms) < 2 or len(terms) > MAX_SYNONYMS_PER_GROUP:
            raise ValidationFailed(
                f"synonym group {n} needs 2 to {MAX_SYNONYMS_PER_GROUP} different terms",
                code="invalid_synonyms",
            )
        if any(len(t) > MAX_SYNONYM_CHARS for t in terms):
            raise ValidationFailed(
                f"a term in synonym group {n} is longer than {MAX_SYNONYM_CHARS} characters",
                code="invalid_synonyms",
            )
        clean.append(terms)
    return clean


# --- units of work (run on a storage thread) ----------------------------------------------------


def _load(uow: UnitOfWork, article_id: str, for_update: bool = False) -> Article:
    article = uow.article(article_id, for_update=for_update)
    if article is None:
        raise _unknown_article(article_id)
    return article


def _record(
    uow: UnitOfWork,
    kind: EventKind,
    before: Article | None,
    after: Article,
    changes: Sequence[str],
    **extra: Any,
) -> _Change:
    """Store the new version and the event saying what happened."""
    uow.add_article_version(model.snapshot(after, changes))
    indexed = _touches_index(before.status if before else None, after.status)
    payload = {"article": _article_ref(after), "changes": list(changes), "indexed": indexed}
    actor_kind = AuthorKind.AGENT if after.updated_by is not None else AuthorKind.SYSTEM
    uow.append_event(kind, None, {**payload, **extra}, actor_kind, after.updated_by)
    return _Change(after, indexed)


def do_create(uow: UnitOfWork, item: ArticleInput, actor_id: int | None) -> _Change:
    article_id = item.id or new_article_id(item.content.title)
    status = item.status or ArticleStatus.DRAFT
    article = model.new_article(article_id, item.content, status, actor_id, utcnow())
    uow.add_article(article)
    return _record(uow, EventKind.ARTICLE_CREATED, None, article, (*CONTENT_FIELDS, "status"))


def do_update(
    uow: UnitOfWork, article_id: str, content: ArticleContent, version: int, actor_id: int | None
) -> _Change:
    before = _load(uow, article_id, for_update=True)
    if before.version != version:
        raise HubError(
            f"article {article_id!r} is at version {before.version}, not {version}: someone "
            "else changed it; reload it and apply your changes again",
            code="version_conflict",
            status=409,
        )
    changes = model.changed_fields(before.content, content)
    if not changes:
        return _Change(before, indexed=False)
    after = model.edit_article(before, content, actor_id, utcnow())
    uow.save_article(after)
    return _record(uow, EventKind.ARTICLE_UPDATED, before, after, changes)


def do_set_status(
    uow: UnitOfWork, article_id: str, status: ArticleStatus, actor_id: int | None
) -> _Change:
    before = _load(uow, article_id, for_update=True)
    after = model.change_article_status(before, status, actor_id, utcnow())
    uow.save_article(after)
    return _record(
        uow,
        EventKind.ARTICLE_STATUS_CHANGED,
        before,
        after,
        ("status",),
        status=[before.status.value, after.status.value],
    )


def do_restore(uow: UnitOfWork, article_id: str, version: int, actor_id: int | None) -> _Change:
    before = _load(uow, article_id, for_update=True)
    old = uow.article_version(article_id, version)
    if old is None:
        raise NotFound(f"article {article_id!r} has no version {version}", code="unknown_version")
    changes = model.changed_fields(before.content, old.content)
    if not changes:
        return _Change(before, indexed=False)
    after = model.edit_article(before, old.content, actor_id, utcnow())
    uow.save_article(after)
    return _record(uow, EventKind.ARTICLE_UPDATED, before, after, changes, restored_from=version)


def do_import(uow: UnitOfWork, item: ArticleInput, publish: bool) -> tuple[ImportResult, _Change]:
    """Create, update or leave alone one imported article (idempotent by id).

    The status is the row's own, else published with `publish`, else draft for a new
    article and unchanged for an existing one. The file is authoritative: its status is
    taken even where the editorial workflow would not allow the step.
    """
    assert item.id is not None, "imports carry ids (kb_io makes them)"
    wanted = item.status or (ArticleStatus.PUBLISHED if publish else None)
    before = uow.article(item.id, for_update=True)
    if before is None:
        created = do_create(uow, dataclasses.replace(item, status=wanted), None)
        return ImportResult.CREATED, created
    changes = model.changed_fields(before.content, item.content)
    status = wanted or before.status
    if not changes and status is before.status:
        return ImportResult.UNCHANGED, _Change(before, indexed=False)
    after = dataclasses.replace(
        model.edit_article(before, item.content, None, utcnow()), status=status
    )
    if status is not before.status:
        changes = (*changes, "status")
    kind = EventKind.ARTICLE_UPDATED if changes != ("status",) else EventKind.ARTICLE_STATUS_CHANGED
    uow.save_article(after)
    return ImportResult.UPDATED, _record(
        uow, kind, before, after, changes, status=[before.status.value, after.status.value]
    )


# --- the service (event loop side) ---------------------------------------------------------------


class ArticleService:
    """Entry point for the knowledge-base API, the CLI and the bot."""

    def __init__(self, store: Store, keeper: IndexKeeper):
        self.store = store
        self.keeper = keeper

    # --- changes ------------------------------------------------------------------------------

    async def create(self, item: ArticleInput, actor_id: int | None) -> Article:
        if item.id is not None:
            model.check_article_id(item.id)
        return await self._apply(lambda uow: do_create(uow, item, actor_id))

    async def update(
        self, article_id: str, content: ArticleContent, version: int, actor_id: int | None
    ) -> Article:
        """Save new content if `version` is still the current one (optimistic concurrency)."""
        return await self._apply(lambda uow: do_update(uow, article_id, content, version, actor_id))

    async def set_status(
        self, article_id: str, status: ArticleStatus, actor_id: int | None
    ) -> Article:
        return await self._apply(lambda uow: do_set_status(uow, article_id, status, actor_id))

    async def restore(self, article_id: str, version: int, actor_id: int | None) -> Article:
        """Make an old version's content the current one, as a new version."""
        return await self._apply(lambda uow: do_restore(uow, article_id, version, actor_id))

    async def import_article(self, item: ArticleInput, *, publish: bool = False) -> Imported:
        """One imported article in its own transaction; the caller refreshes the index once
        for the whole import (`keeper.refresh`), which is much cheaper than per article."""
        result, change = await self.store.write(lambda uow: do_import(uow, item, publish))
        return Imported(result, change.article.id, change.indexed)

    async def _apply(self, fn: Any) -> Article:
        change: _Change = await self.store.write(fn)
        if change.indexed:
            await self.keeper.refresh([change.article.id])
        return change.article

    # --- reads --------------------------------------------------------------------------------

    async def get(self, article_id: str, *, published_only: bool = False) -> ArticleView:
        def run(uow: UnitOfWork) -> ArticleView:
            article = _load(uow, article_id)
            if published_only and article.status is not ArticleStatus.PUBLISHED:
                raise _unknown_article(article_id)
            helpful, not_helpful = uow.kb_feedback_counts([article.id]).get(article.id, (0, 0))
            by = uow.agent(article.updated_by) if article.updated_by is not None else None
            return ArticleView(article, helpful, not_helpful, by)

        return await self.store.read(run)

    async def summaries(self, flt: ArticleFilter) -> list[ArticleView]:
        def run(uow: UnitOfWork) -> list[ArticleView]:
            articles = uow.articles(flt)
            counts = uow.kb_feedback_counts([a.id for a in articles])
            return [ArticleView(a, *counts.get(a.id, (0, 0))) for a in articles]

        return await self.store.read(run)

    async def published(self, article_ids: Sequence[str]) -> list[Article]:
        """These articles in this order, leaving out any not published (any more)."""

        def run(uow: UnitOfWork) -> list[Article]:
            found = (uow.article(i) for i in article_ids)
            return [a for a in found if a is not None and a.status is ArticleStatus.PUBLISHED]

        return await self.store.read(run)

    async def versions(self, article_id: str) -> list[VersionView]:
        """Newest first."""

        def run(uow: UnitOfWork) -> list[VersionView]:
            _load(uow, article_id)
            versions = uow.article_versions(article_id)
            authors = uow.agents({v.author_id for v in versions if v.author_id is not None})
            return [
                VersionView(v, authors.get(v.author_id) if v.author_id else None) for v in versions
            ]

        return await self.store.read(run)

    async def version(self, article_id: str, version: int) -> VersionView:
        def run(uow: UnitOfWork) -> VersionView:
            _load(uow, article_id)
            found = uow.article_version(article_id, version)
            if found is None:
                raise NotFound(
                    f"article {article_id!r} has no version {version}", code="unknown_version"
                )
            author = uow.agent(found.author_id) if found.author_id is not None else None
            return VersionView(found, author)

        return await self.store.read(run)

    # --- feedback and questions ---------------------------------------------------------------

    async def feedback(
        self,
        article_id: str,
        helpful: bool,
        conversation_id: int | None = None,
        visitor_id: str | None = None,
    ) -> None:
        """Count a "was this helpful?" answer on a published article.

        With `visitor_id` (the help center's visitor cookie) it is that visitor's one vote
        on the article: voting again changes it rather than adding another.
        """

        def run(uow: UnitOfWork) -> None:
            article = uow.article(article_id)
            if article is None or article.status is not ArticleStatus.PUBLISHED:
                raise _unknown_article(article_id)
            if visitor_id is not None:
                uow.set_kb_vote(article_id, visitor_id, helpful, utcnow())
            else:
                uow.add_kb_feedback(article_id, helpful, conversation_id, utcnow())

        await self.store.write(run)

    async def vote_of(self, article_id: str, visitor_id: str) -> bool | None:
        """The help-center visitor's current vote on the article, None when they gave none."""
        return await self.store.read(lambda uow: uow.kb_vote(article_id, visitor_id))

    async def help_search(self, query: str, limit: int) -> HelpResults:
        """The help center's search: both languages, only the hits worth showing a reader.

        The semantic stage scores every article, however unrelated; a reader is shown the
        bot's answer, hits that share a word with the question (the snippet marks it) and
        hits that score close to an answer. Nothing else is a result, so a question the
        knowledge base cannot answer gets a real "no results".
        """
        result = await self.search(query, None, limit, KbSource.HELP)
        shown = [
            h
            for h in result.hits
            if h is result.answer or "<mark>" in h.highlight or h.score >= RELATED_SCORE
        ]
        articles = await self.published([h.article_id for h in shown])
        return HelpResults(articles, result.suggestion)

    async def popular(self, language: str | None, limit: int) -> list[Article]:
        """Published articles readers found most helpful (suggestions when a search found
        nothing), in one language or all."""
        flt = ArticleFilter(status=(ArticleStatus.PUBLISHED,), language=language, limit=None)
        views = await self.summaries(flt)
        views.sort(key=lambda v: (-v.helpful, v.not_helpful, v.article.content.title))
        return [v.article for v in views[:limit]]

    async def search(
        self, query: str, language: str | None, limit: int, source: KbSource
    ) -> KbResult:
        """Search published articles and record the question (for the gap report)."""
        if not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise ValidationFailed(f"limit must be 1 to {MAX_SEARCH_LIMIT}", code="invalid_limit")
        text = model.clean_query(query)
        lang = model.article_language(language) if language else None
        try:
            result = await self.keeper.search(text, lang, limit)
        except ValueError as exc:
            raise ValidationFailed(str(exc), code="unusable_query") from None
        top = result.hits[0] if result.hits else None
        if result.answer is not None:
            outcome = KbOutcome.ANSWERED
        else:
            outcome = KbOutcome.ESCALATED if top else KbOutcome.NO_HIT
        asked = KbQuery(
            text=text,
            language=lang,
            top_article_id=top.article_id if top else None,
            top_score=top.score if top else None,
            outcome=outcome,
            source=source,
            created_at=utcnow(),
        )
        await self.store.write(lambda uow: uow.add_kb_query(asked))
        return result

    async def gaps(self, days: int) -> list[GapGroup]:
        """Questions escalated or unanswered in the last `days` days, similar ones grouped,
        most frequent group first."""
        since = utcnow() - timedelta(days=days)
        missed = (KbOutcome.ESCALATED, KbOutcome.NO_HIT)
        queries = await self.store.read(lambda uow: uow.kb_queries(missed, since, GAP_QUERY_LIMIT))
        # The same question asked again is counted, but clustered once.
        asked: dict[str, list[KbQuery]] = {}
        for q in queries:
            asked.setdefault(q.text.casefold(), []).append(q)
        texts = [same[0].text for same in asked.values()]
        times = list(asked.values())
        groups: list[GapGroup] = []
        for members in await self.keeper.group_similar(texts):
            ranked = sorted(members, key=lambda i: (-len(times[i]), texts[i]))
            groups.append(
                GapGroup(
                    example=texts[ranked[0]],
                    questions=[texts[i] for i in ranked[:GAP_QUESTIONS_SHOWN]],
                    count=sum(len(times[i]) for i in members),
                    last_asked_at=max(q.created_at for i in members for q in times[i]),
                )
            )
        groups.sort(key=lambda g: (-g.count, -g.last_asked_at.timestamp()))
        return groups

    # --- synonyms -----------------------------------------------------------------------------

    async def synonyms(self) -> list[list[str]]:
        return await self.store.read(lambda uow: uow.kb_synonyms())

    async def set_synonyms(
        self, groups: Sequence[Sequence[str]], actor_id: int | None
    ) -> list[list[str]]:
        clean = synonym_groups(groups)

        def run(uow: UnitOfWork) -> None:
            uow.set_kb_synonyms(clean)
            uow.append_event(
                EventKind.KB_SYNONYMS_UPDATED, None, {"groups": clean}, AuthorKind.AGENT, actor_id
            )

        await self.store.write(run)
        await self.keeper.set_synonyms(clean)
        return clean
