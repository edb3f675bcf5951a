"""IndexKeeper compacts the index in the background, never inside an edit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

import kb.index
from hub.ports import KbArticle, KbResult
from hub.services.kb_index import IndexKeeper
from kb import WhooshKnowledgeIndex

T = TypeVar("T")


class _Uow:
    """Just enough of a unit of work: no stored articles, no synonyms."""

    def article(self, article_id: str) -> None:
        return None

    def kb_synonyms(self) -> list[list[str]]:
        return []


class _Store:
    async def read(self, fn: Callable[[Any], T]) -> T:
        return fn(_Uow())


class _SlowCompactingIndex:
    """Records calls; `optimize` blocks until the test releases it."""

    def __init__(self) -> None:
        self.removed: list[list[str]] = []
        self.optimize_started = threading.Event()
        self.release = threading.Event()
        self.optimized = 0

    def search(self, query: str, language: str | None = None, limit: int = 10) -> KbResult:
        return KbResult(query=query, hits=[], answer=None, suggestion=None)

    def upsert(self, articles: Sequence[KbArticle]) -> None:
        pass

    def remove(self, article_ids: Sequence[str]) -> None:
        self.removed.append(list(article_ids))

    def rebuild(
        self, articles: Sequence[KbArticle], progress: Callable[[int], None] | None = None
    ) -> None:
        pass

    def article_ids(self) -> set[str]:
        return set()

    def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        pass

    def group_similar(self, texts: Sequence[str]) -> list[list[int]]:
        return []

    def needs_optimize(self) -> bool:
        return self.optimized == 0

    def optimize(self) -> None:
        self.optimize_started.set()
        assert self.release.wait(30)
        self.optimized += 1


async def test_an_edit_returns_before_the_compaction_it_triggers() -> None:
    index = _SlowCompactingIndex()
    keeper = IndexKeeper(_Store(), lambda: index)  # type: ignore[arg-type]
    await keeper.open()
    try:
        # The article is not stored (any more): the edit removes it from the index.
        await asyncio.wait_for(keeper.refresh(["gone"]), 30)
        assert index.removed == [["gone"]]
        assert await asyncio.to_thread(index.optimize_started.wait, 30)
        assert index.optimized == 0  # still compacting, yet the edit has returned
        index.release.set()
        await asyncio.wait_for(keeper.idle(), 30)
        assert index.optimized == 1
        await keeper.refresh(["gone-too"])  # nothing left to compact: no second run
        await asyncio.wait_for(keeper.idle(), 30)
        assert index.optimized == 1
    finally:
        index.release.set()
        await keeper.close()


ARTICLES = [
    KbArticle(f"a{i}", "en", f"Article {i} about cards", f"Body {i} on fees and limits.")
    for i in range(12)
]


def test_optimize_merges_deleted_documents_without_changing_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kb.index, "OPTIMIZE_MIN_DELETED", 2)
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
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
