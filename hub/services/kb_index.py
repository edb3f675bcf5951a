"""Keeps this process's knowledge-base search index in step with the database.

The database is the truth; the index is derived and can be rebuilt at any time. Every hub
process has its own index and applies every article change to it:

- changes made here: right after their commit (`refresh`), awaited, so an editor who publishes
  an article can search for it the moment the request returns;
- changes made by other processes: from their events on the bus (`follow`); the article is
  re-read from the database, so an event only has to say which article changed;
- changes made while this process was down: at start (`check`), the set of published ids in
  the database is compared with the index's and the index rebuilt in the background when they
  differ (a missing or emptied index directory included).

Index calls block (Whoosh writes, embeddings), so they run on this keeper's threads, never on
the event loop: one writer thread (Whoosh admits one writer anyway) and a few searcher threads.
Refreshes hold a lock across "read from the database, write the index": the last refresh to
run has read the latest committed state, so two quick edits can never leave the older one in.

Replaced and removed articles linger in the index files until they are merged away; an index
that can (`needs_optimize` / `optimize`) is compacted after an edit, in the background: the
edit's caller never waits for it (an edit arriving meanwhile queues behind it on the writer
thread, as behind any write).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from hub.model import Article, ArticleStatus, EventKind
from hub.ports import (
    ArticleFilter,
    BusEnvelope,
    EventBus,
    KbArticle,
    KbResult,
    KnowledgeIndex,
    Store,
    UnitOfWork,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

ARTICLE_EVENTS = frozenset(
    {EventKind.ARTICLE_CREATED, EventKind.ARTICLE_UPDATED, EventKind.ARTICLE_STATUS_CHANGED}
)
PUBLISHED_ONLY = ArticleFilter(status=(ArticleStatus.PUBLISHED,), limit=None)


@runtime_checkable
class _Closable(Protocol):
    def close(self) -> None: ...


@runtime_checkable
class _Optimizable(Protocol):
    """An index that accumulates deleted documents and can merge them away."""

    def needs_optimize(self) -> bool: ...
    def optimize(self) -> None: ...


def kb_article(article: Article) -> KbArticle:
    """What the index holds of an article."""
    c = article.content
    return KbArticle(
        id=article.id,
        language=c.language,
        title=c.title,
        body=c.body,
        questions=c.questions,
        short_answer=c.short_answer,
        tags=c.tags,
    )


class IndexKeeper:
    """Owns the index of one process: opening, searching, refreshing, rebuilding."""

    def __init__(self, store: Store, open_index: Callable[[], KnowledgeIndex], searchers: int = 4):
        self.store = store
        self._open_index = open_index
        self._index: KnowledgeIndex | None = None
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="omnihub-kb-write")
        self._searchers = ThreadPoolExecutor(searchers, thread_name_prefix="omnihub-kb-search")
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._optimizing: asyncio.Task[None] | None = None

    @property
    def index(self) -> KnowledgeIndex:
        if self._index is None:
            raise RuntimeError("the knowledge-base index is not open yet")
        return self._index

    async def open(self) -> None:
        """Open (or create) the index and apply the stored synonyms."""
        self._index = await self._write(self._open_index)
        groups = await self.store.read(lambda uow: uow.kb_synonyms())
        await self._write(self.index.set_synonyms, groups)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        index, self._index = self._index, None
        if isinstance(index, _Closable):
            await self._write(index.close)
        self._writer.shutdown(wait=True)
        self._searchers.shutdown(wait=True)

    # --- reading ------------------------------------------------------------------------------

    async def search(self, query: str, language: str | None, limit: int) -> KbResult:
        return await self._search(self.index.search, query, language, limit)

    async def group_similar(self, texts: Sequence[str]) -> list[list[int]]:
        return await self._search(self.index.group_similar, texts)

    # --- keeping in step ----------------------------------------------------------------------

    async def refresh(self, article_ids: Collection[str]) -> None:
        """Make the index hold exactly the published ones of these articles, as stored now."""
        if not article_ids:
            return
        ids = sorted(set(article_ids))
        async with self._lock:

            def load(uow: UnitOfWork) -> list[Article]:
                return [a for i in ids if (a := uow.article(i)) is not None]

            found = await self.store.read(load)
            published = [a for a in found if a.status is ArticleStatus.PUBLISHED]
            gone = sorted(set(ids) - {a.id for a in published})
            if published:
                await self._write(self.index.upsert, [kb_article(a) for a in published])
            if gone:
                await self._write(self.index.remove, gone)
        self._optimize_in_background()

    async def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the index from every published article; returns how many.

        `progress(done, total)` is called from the index's writer thread as it goes.
        """
        async with self._lock:
            articles = await self.store.read(lambda uow: uow.articles(PUBLISHED_ONLY))
            total = len(articles)

            def report(done: int) -> None:
                if progress is not None:
                    progress(done, total)

            await self._write(self.index.rebuild, [kb_article(a) for a in articles], report)
            return total

    async def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        await self._write(self.index.set_synonyms, groups)

    async def check(self) -> bool:
        """Rebuild if the index's articles are not the database's published ones (e.g. the
        index directory was lost, or changes were made while this process was down)."""
        indexed = await self._write(self.index.article_ids)
        stored = await self.store.read(lambda uow: {a.id for a in uow.articles(PUBLISHED_ONLY)})
        if indexed == stored:
            return False
        log.info(
            "kb index holds %d articles, the database %d published: rebuilding",
            len(indexed),
            len(stored),
        )
        await self.rebuild()
        return True

    def check_in_background(self) -> None:
        self._spawn(self.check(), "omnihub-kb-check")

    def _optimize_in_background(self) -> None:
        """Compact the index after edits if it asks for it; at most one compaction at a time."""
        if not isinstance(self._index, _Optimizable):
            return
        if self._optimizing is not None and not self._optimizing.done():
            return  # edits meanwhile delete little; the next edit after it looks again
        self._optimizing = self._spawn(self._optimize(self._index), "omnihub-kb-optimize")

    async def _optimize(self, index: _Optimizable) -> None:
        if await self._write(index.needs_optimize):
            await self._write(index.optimize)

    async def idle(self) -> None:
        """Wait for background work (compaction, refreshes from the bus) to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def follow(self, bus: EventBus) -> Callable[[], None]:
        """Apply other processes' article and synonym changes; returns the unsubscribe."""

        def on_event(envelope: BusEnvelope) -> None:
            if envelope["origin"] == bus.node_id:
                return  # applied right after our own commit
            kind, data = envelope["kind"], envelope["data"]
            if kind in ARTICLE_EVENTS and data.get("indexed"):
                self._spawn(self.refresh([data["article"]["id"]]), "omnihub-kb-refresh")
            elif kind == EventKind.KB_SYNONYMS_UPDATED:
                self._spawn(self.set_synonyms(data["groups"]), "omnihub-kb-synonyms")

        return bus.subscribe(on_event)

    # --- internals ----------------------------------------------------------------------------

    def _spawn(self, work: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The index lags until the next change or restart; `omnihub kb reindex` repairs it.
            log.error("kb index update failed", exc_info=task.exception())

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def _search(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._searchers, fn, *args)
