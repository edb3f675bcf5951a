"""IndexKeeper compacts the index in the background, never inside an edit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import TypeVar

from hub.ports import KbArticle
from hub.services.kb_index import IndexKeeper
from hub.storage import SqlStore, migrate
from kb import WhooshKnowledgeIndex

T = TypeVar("T")


ARTICLES = [
    KbArticle(f"a{i}", "en", f"Article {i} about cards", f"Body {i} on fees and limits.")
    for i in range(12)
]


class _GatedIndex(WhooshKnowledgeIndex):
    """The real index; `optimize` waits for the test's go-ahead, so the test can see an edit
    return while the compaction it triggered is still running."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, optimize_min_deleted=0)
        self.optimize_started = threading.Event()
        self.release = threading.Event()
        self.optimized = 0

    def optimize(self) -> None:
        self.optimize_started.set()
        assert self.release.wait(30)
        super().optimize()
        self.optimized += 1


async def test_an_edit_returns_before_the_compaction_it_triggers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    store = SqlStore.from_url(url)
    index = _GatedIndex(tmp_path / "kb")
    index.rebuild(ARTICLES)  # indexed, but not stored: a refresh removes them
    keeper = IndexKeeper(store, lambda: index)
    await keeper.open()
    try:
        await asyncio.wait_for(keeper.refresh([a.id for a in ARTICLES[:6]]), 30)
        assert index.article_ids() == {a.id for a in ARTICLES[6:]}
        assert await asyncio.to_thread(index.optimize_started.wait, 30)
        assert index.optimized == 0  # still compacting, yet the edit has returned
        index.release.set()
        await asyncio.wait_for(keeper.idle(), 30)
        assert index.optimized == 1 and index.deleted_count() == 0
        assert (await keeper.search("cards", "en", 10)).hits  # the index still answers
        await keeper.refresh(["not-indexed"])  # nothing deleted: no second compaction
        await asyncio.wait_for(keeper.idle(), 30)
        assert index.optimized == 1
    finally:
        index.release.set()
        await keeper.close()
        await store.close()


def test_optimize_merges_deleted_documents_without_changing_results(tmp_path: Path) -> None:
    ix = WhooshKnowledgeIndex(tmp_path / "kb", optimize_min_deleted=2)
    ix.rebuild(ARTICLES)
    assert not ix.needs_optimize()
    ix.upsert([ARTICLES[0]])  # a replacement leaves the old document deleted
    ix.remove([a.id for a in ARTICLES[6:]])
    assert ix.deleted_count() >= 6
    assert ix.needs_optimize()
    before = [(h.article_id, h.score) for h in ix.search("card fees limits").hits]
    ix.optimize()
    assert ix.deleted_count() == 0 and not ix.needs_optimize()
    assert [(h.article_id, h.score) for h in ix.search("card fees limits").hits] == before
    ix.close()
