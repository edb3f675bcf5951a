"""Questions wrapped in words no article has, or in other sentences, score like the bare
question (kb.query, kb.index): on a real BM25 index in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from kb import WhooshKnowledgeIndex, open_index
from kb.query import CORE_WEIGHT, core, question_sentences, views
from tests.kb.test_index import ARTICLES


@pytest.fixture
def index(tmp_path: Path) -> WhooshKnowledgeIndex:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(ARTICLES)
    return ix


def top(index: WhooshKnowledgeIndex, query: str) -> tuple[str | None, str | None, float]:
    """(the answer, the top hit, its score)."""
    result = index.search(query)
    answer = result.answer.article_id if result.answer else None
    if not result.hits:
        return answer, None, 0.0
    return answer, result.hits[0].article_id, result.hits[0].score


def test_a_name_no_article_has_still_gets_an_answer(tmp_path: Path) -> None:
    """With the semantic stage, the core ("My something card was stolen") confirms the top
    hit; it never reorders the hits."""
    ix = open_index(tmp_path / "semantic", semantic=True)
    ix.upsert(ARTICLES)
    bare = ix.search("My card was stolen")
    assert bare.answer is not None and bare.answer.article_id == "en-card-lost"
    for named in ("My Zorblax Platinum card was stolen", "My card 48213 was stolen"):
        result = ix.search(named)
        assert result.answer is not None and result.answer.article_id == "en-card-lost", named
        scores = [h.score for h in result.hits]
        assert scores == sorted(scores, reverse=True)


def test_the_question_among_other_sentences_scores_as_itself(
    index: WhooshKnowledgeIndex,
) -> None:
    story = (
        "Hello there. I have had a long day at the office and the kids were loud all evening. "
        "How can I change my login password? Thanks a lot, Ana"
    )
    question = top(index, "How can I change my login password?")
    assert question[1] == "en-reset"
    assert top(index, story) == pytest.approx(question)


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
    assert views("I want to return my rocket skates.", None) == [  # BM25 only: no core
        ("I want to return my rocket skates.", 1.0)
    ]
