"""Traditional and Simplified Chinese, full-width and half-width forms are one question to the
knowledge base: folded the same way when indexing and when searching."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from hub.model import ArticleStatus, article_content
from hub.ports import KbArticle
from hub.services.articles import ArticleInput, ArticleService
from hub.services.kb_index import IndexKeeper
from hub.storage import SqlStore, migrate
from kb import WhooshKnowledgeIndex
from tests.kb.test_index import ARTICLES

TRADITIONAL = KbArticle(
    id="zh-hant-refund",
    language="zh",
    title="退貨退款需要多久",
    body="收到退貨後，我們會在三個工作天內退款到原付款帳戶。",
    questions=("錢什麼時候退回來",),
)


def hits(index: WhooshKnowledgeIndex, query: str) -> list[tuple[str, float]]:
    return [(h.article_id, round(h.score, 6)) for h in index.search(query).hits]


def test_a_traditional_question_finds_what_its_simplified_twin_finds(tmp_path: Path) -> None:
    index = WhooshKnowledgeIndex(tmp_path / "kb")
    index.rebuild(ARTICLES)
    simplified = hits(index, "银行卡丢了怎么办")
    assert simplified and simplified[0][0] == "zh-card-lost"
    assert hits(index, "銀行卡丟了怎麼辦") == simplified
    assert hits(index, "如何重設密碼")[0][0] == "zh-reset"
    assert index.search("銀行卡丟了怎麼辦").answer == index.search("银行卡丢了怎么办").answer


def test_a_traditional_article_is_found_in_either_script_and_highlighted_as_written(
    tmp_path: Path,
) -> None:
    index = WhooshKnowledgeIndex(tmp_path / "kb")
    index.rebuild([*ARTICLES, TRADITIONAL])
    for query in ("退款需要多久", "退款需要多久".translate(str.maketrans("货帐户", "貨帳戶"))):
        [top, *_] = index.search(query).hits
        assert top.article_id == "zh-hant-refund"
    [top, *_] = index.search("钱什么时候退回来").hits
    assert top.article_id == "zh-hant-refund"
    assert "<mark>錢</mark>" in top.highlight or "<mark>退回</mark>" in top.highlight


def test_full_width_letters_and_digits_search_like_ascii(tmp_path: Path) -> None:
    index = WhooshKnowledgeIndex(tmp_path / "kb")
    index.rebuild(ARTICLES)
    assert hits(index, "ｒｅｓｅｔ　ＰＡＳＳＷＯＲＤ") == hits(index, "reset password")
    assert hits(index, "ｒｅｓｅｔ　ＰＡＳＳＷＯＲＤ")[0][0] == "en-reset"


async def test_an_index_built_before_the_folding_is_rebuilt_on_open(tmp_path: Path) -> None:
    """An index directory left by an older version (schema 4: Traditional characters indexed
    as written) is not reused: it opens empty and the keeper rebuilds it from the database."""
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await asyncio.to_thread(migrate.upgrade, url)
    store = SqlStore.from_url(url)
    directory = tmp_path / "kb"
    keeper = IndexKeeper(store, lambda: WhooshKnowledgeIndex(directory))
    await keeper.open()
    content = article_content(
        title=TRADITIONAL.title,
        body=TRADITIONAL.body,
        questions=list(TRADITIONAL.questions),
        language="zh",
    )
    item = ArticleInput(content, id=TRADITIONAL.id, status=ArticleStatus.PUBLISHED)
    await ArticleService(store, keeper).create(item, None)
    await keeper.close()
    (directory / "omnihub-kb.json").write_text(json.dumps({"schema": 4}))

    keeper = IndexKeeper(store, lambda: WhooshKnowledgeIndex(directory))
    await keeper.open()
    try:
        assert await keeper.check() is True  # emptied by the schema change, so rebuilt
        result = await keeper.search("退款需要多久", None, 5)
        assert [h.article_id for h in result.hits][:1] == [TRADITIONAL.id]
    finally:
        await keeper.close()
        await store.close()
