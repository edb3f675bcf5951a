"""Questions wrapped in words no article has, or in other sentences, score like the bare
question (kb.query, kb.index): on a real BM25 index in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import WhooshKnowledgeIndex
from kb.query import CORE_WEIGHT, core, question_sentences, views
from tests.kb.test_index import ARTICLES


@pytest.fixture
def index(tmp_path: Path) -> WhooshKnowledgeIndex:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(ARTICLES)
    return ix


def top(index: WhooshKnowledgeIndex, query: str) -> tuple[str | None, float]:
    result = index.search(query)
    answer = result.answer.article_id if result.answer else None
    return answer, result.hits[0].score if result.hits else 0.0


def test_a_name_no_article_has_does_not_lower_the_score(index: WhooshKnowledgeIndex) -> None:
    bare = top(index, "My card was stolen")
    assert bare[0] == "en-card-lost"
    assert top(index, "My Zorblax Platinum card was stolen") == pytest.approx(bare)
    assert top(index, "My card was stolen: ticket 48213-AX") == pytest.approx(bare)


def test_the_question_among_other_sentences_is_answered(index: WhooshKnowledgeIndex) -> None:
    story = (
        "Hello there. I have had a long day at the office and the kids were loud all evening. "
        "How can I change my login password? Thanks a lot, Ana"
    )
    answer, score = top(index, story)
    assert answer == "en-reset"
    assert score == pytest.approx(top(index, "How can I change my login password?")[1])


def test_a_question_mostly_about_unknown_things_is_not_answered(
    index: WhooshKnowledgeIndex,
) -> None:
    assert top(index, "what do geese eat in winter")[0] is None
    assert top(index, "zxqv wplkj mnbvc")[0] is None


def test_views() -> None:
    def known(term: str) -> bool:
        return term in {"want", "return", "item", "order"}

    assert question_sentences("How do I return it?") == []  # one sentence: itself
    assert question_sentences("Hi. I bought skates. How do I return them? Thanks!") == [
        "How do I return them?"
    ]
    assert question_sentences("你好。我想退货，怎么办") == ["我想退货，怎么办"]
    assert core("I want to return my rocket skates.", known) == ("I want to return my something.")
    assert core("return rocket skates", known) is None  # more unknown than known
    assert core("return my item", known) is None  # nothing unknown
    assert views("I want to return my rocket skates.", known) == [
        ("I want to return my rocket skates.", 1.0),
        ("I want to return my something.", CORE_WEIGHT),
    ]
