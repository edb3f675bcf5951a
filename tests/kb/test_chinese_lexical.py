"""Chinese lexical matching: full-width and Traditional folding of queries and articles,
single characters for typos, pinyin initials of synonyms, Chinese synonym groups (the
editor's and the demo shop's). A real BM25-only index over a few articles written here."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub.demo import synonym_groups as demo_groups
from hub.errors import ValidationFailed
from hub.ports import KbArticle
from hub.services.articles import synonym_groups
from kb import WhooshKnowledgeIndex
from kb.synonyms import initials
from kb.text import terms

ARTICLES = [
    KbArticle(
        "credit-lost",
        "zh",
        "信用卡丢失后如何挂失？",
        "在手机银行的卡片管理里选择挂失，新卡七天内寄出。",
        ("信用卡丢了怎么办", "卡片被偷了"),
    ),
    KbArticle(
        "mortgage-prepay",
        "zh",
        "房贷可以提前还款吗？",
        "房贷满一年后可以申请提前还款，需提前十五天预约。",
        ("提前还房贷", "房贷一次性还清"),
    ),
    KbArticle(
        "password",
        "zh",
        "登录密码忘记了怎么重置？",
        "在登录页点击忘记密码，用短信验证码设置新密码。",
        ("密码想不起来", "重置登录密码"),
    ),
    KbArticle(
        "atm-card",
        "en",
        "My ATM card was swallowed",
        "Call us and we cancel the card and send a new one.",
        ("the cash machine kept my card",),
    ),
]


@contextmanager
def built_index(directory: Path, articles: Sequence[KbArticle]) -> Iterator[WhooshKnowledgeIndex]:
    """A BM25-only index holding `articles`, closed afterwards."""
    ix = WhooshKnowledgeIndex(directory)
    try:
        ix.rebuild(articles)
        yield ix
    finally:
        ix.close()


@pytest.fixture
def index(tmp_path: Path) -> Iterator[WhooshKnowledgeIndex]:
    with built_index(tmp_path / "kb", ARTICLES) as ix:
        yield ix


def top(ix: WhooshKnowledgeIndex, query: str) -> str | None:
    hits = ix.search(query).hits
    return hits[0].article_id if hits else None


def test_full_width_latin_is_folded_in_queries_and_articles(
    index: WhooshKnowledgeIndex,
) -> None:
    assert terms("ＡＴＭ　ｃａｒｄ ｓｗａｌｌｏｗｅｄ") == terms("ATM card swallowed")
    assert top(index, "ＡＴＭ ｃａｒｄ ｓｗａｌｌｏｗｅｄ") == "atm-card"
    index.upsert([KbArticle("fw", "en", "Ｒｅｆｕｎｄ ｐｏｌｉｃｙ", "Ｍｏｎｅｙ back.")])
    assert top(index, "refund policy") == "fw"


def test_traditional_is_folded_in_queries_and_articles(index: WhooshKnowledgeIndex) -> None:
    assert top(index, "信用卡遺失了怎麼辦") == "credit-lost"
    assert top(index, "房貸提前還款") == "mortgage-prepay"
    index.upsert([KbArticle("trad", "zh", "匯款手續費", "跨行匯款每筆收取五元手續費。")])
    assert top(index, "汇款手续费多少") == "trad"


def test_a_typo_still_meets_the_article_through_its_characters(
    index: WhooshKnowledgeIndex,
) -> None:
    # 信永卡: no word and no bigram in common with 信用卡, but two of its characters.
    assert top(index, "信永卡丢了") == "credit-lost"
    assert top(index, "登陆密吗忘了") == "password"


def test_pinyin_initials_of_synonyms_find_the_chinese_word(
    index: WhooshKnowledgeIndex,
) -> None:
    assert initials("信用卡") == "xyk"
    assert initials("手機銀行") == "sjyh"  # Traditional folded first
    assert initials("密码") is None  # two letters: as often an English abbreviation
    assert initials("ATM卡") is None
    assert top(index, "xyk") == "credit-lost"  # a built-in group's 信用卡
    assert top(index, "fd提前还") == "mortgage-prepay"  # 房贷 is two characters: no initials
    index.set_synonyms([["按揭贷款", "房贷"]])
    assert top(index, "ajdk能提前还吗") == "mortgage-prepay"
    # English questions are not read as initials of anything.
    assert top(index, "card swallowed") == "atm-card"


def test_editor_groups_in_chinese_apply_at_once(index: WhooshKnowledgeIndex) -> None:
    assert top(index, "按揭") is None
    stored = synonym_groups([["按揭", "房贷"], ["ＰＩＮ", "密碼"]])
    assert stored == [["按揭", "房贷"], ["pin", "密碼"]]  # full-width typed: ASCII stored
    index.set_synonyms(stored)
    assert top(index, "按揭") == "mortgage-prepay"
    assert top(index, "PIN忘了") == "password"  # a Traditional member folds like the text
    with pytest.raises(ValidationFailed, match="group 1"):
        synonym_groups([["房贷", "房贷"]])


def test_demo_synonyms_are_valid_groups_that_help_the_demo_faq(tmp_path: Path) -> None:
    faq = Path(__file__).resolve().parents[2] / "hub" / "demo" / "faq.jsonl"
    rows = [json.loads(line) for line in faq.read_text(encoding="utf-8").splitlines() if line]
    articles = [
        KbArticle(r["id"], r["language"], r["title"], r["body"], tuple(r["questions"]))
        for r in rows
    ]
    groups = synonym_groups(demo_groups())
    assert len(groups) >= 15
    assert all(len(term) > 1 for group in groups for term in group)
    with built_index(tmp_path / "demo", articles) as ix:
        # 快件 is the colloquial 快递: without the groups a near tie with another article.
        before = ix.search("快件到哪了").hits
        ix.set_synonyms(groups)
        after = ix.search("快件到哪了").hits
        assert before[0].article_id == after[0].article_id == "zh-track-order"
        assert after[0].score - after[1].score > 5 * (before[0].score - before[1].score)
        # Initials of a member (配送费) stand for its whole group (运费, 邮费).
        assert top(ix, "psf多少") == "zh-shipping-times"
