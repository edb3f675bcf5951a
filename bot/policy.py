"""Answer, clarify or escalate: the bot's decision from the knowledge base's scores.

The knowledge base already says whether its top hit is good enough to answer with (its
thresholds, per ranking mode and script, live in `kb/fusion.py`). The bot adds one rule on
top: when the runner-up scores within `clarify_margin` of a top hit that is not a sure one
(under `clarify_below`), or all but ties a sure one, the two are too close to call and the
customer is offered the top choices instead of a guess.

Calibrated on the CLINC150 dev set (bench/bot_decisions.py). Every clarification also asks
about some answers that were right, so in-scope accuracy falls as the margin grows: 0.903
with none, 0.895 with 0.01 for any score, 0.881 with 0.02. Close calls among high scores are
mostly right, so above 0.55 only a near tie (0.001) is asked about: 0.901, with a right
article among the choices for 0.908 of the questions. Out-of-scope recall is unchanged (it
only splits answers).

Answer thresholds per language and ranking mode (`answer_thresholds`, keys such as "zh.bm25"
or "en.semantic", see `threshold_key`): scores of Chinese questions run on another scale than
English ones, and BM25-only scores on another than fused ones, so one threshold cannot hold
out-of-scope questions back in both languages. A key that is not configured keeps the
knowledge base's own verdict (`KbResult.answer`, thresholds in kb/fusion.py): today's values.
`omnihub kb calibrate` picks them from labelled questions (docs/kb-evaluation.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from bot.query import search_text
from bot.understanding import has_words
from hub.ports import KbHit, KbResult

DecisionKind = Literal["answer", "clarify", "escalate"]
TIE_MARGIN = 0.001
MODES = ("semantic", "bm25")
# The script decides the scale of the scores: Han characters are scored as Chinese (jieba words
# and bigrams), anything else as the Latin-script text the English analyzer reads.
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def query_language(text: str) -> str:
    """The threshold language of a question: "zh" with Chinese characters, else "en"."""
    return "zh" if _HAN.search(text) else "en"


def threshold_key(result: KbResult) -> str | None:
    """The `answer_thresholds` key of a result ("zh.bm25", "en.semantic", ...); None when the
    knowledge base did not say whether the semantic stage scored the query."""
    if result.semantic is None:
        return None
    return f"{query_language(result.query)}.{MODES[0] if result.semantic else MODES[1]}"


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Tunable by configuration (OMNIHUB_BOT_CLARIFY_MARGIN, OMNIHUB_BOT_MAX_MISSES,
    OMNIHUB_BOT_ANSWER_THRESHOLDS, OMNIHUB_BOT_CLARIFY_MARGINS)."""

    clarify_margin: float = 0.01
    clarify_below: float = 0.55  # at or above, only a near tie (TIE_MARGIN) is asked about
    max_choices: int = 3
    max_misses: int = 2  # misses in a row before the bot hands off
    # The lowest top score answered with, by `threshold_key`; a missing key keeps the
    # knowledge base's own verdict.
    answer_thresholds: Mapping[str, float] = field(default_factory=dict)
    # `clarify_margin` by `threshold_key`: close calls are commoner among Chinese BM25 scores
    # (bigrams shared by neighbouring articles), so a language may ask sooner.
    clarify_margins: Mapping[str, float] = field(default_factory=dict)

    def threshold(self, result: KbResult) -> float | None:
        """The answer threshold that applies to `result` (None: the index's verdict)."""
        key = threshold_key(result)
        return self.answer_thresholds.get(key) if key is not None else None

    def margin(self, result: KbResult) -> float:
        """The clarify margin that applies to `result` (under `clarify_below`)."""
        key = threshold_key(result)
        found = self.clarify_margins.get(key) if key is not None else None
        return self.clarify_margin if found is None else found


@dataclass(frozen=True, slots=True)
class Decision:
    kind: DecisionKind
    hits: tuple[KbHit, ...]  # answer: the article; clarify: the choices; escalate: the best miss
    score: float | None  # the top hit's fused score
    reason: str  # confident | close_scores | low_score | no_hit | unusable_query

    def explain(self) -> dict[str, Any]:
        """For the conversation's event log: which article, which score, why."""
        top = self.hits[0] if self.hits else None
        return {
            "decision": self.kind,
            "reason": self.reason,
            "article_id": top.article_id if top else None,
            "score": round(self.score, 4) if self.score is not None else None,
            "choices": [h.article_id for h in self.hits] if self.kind == "clarify" else [],
        }


def decide(result: KbResult, policy: DecisionPolicy) -> Decision:
    """What to do with a knowledge-base result (see the module docstring)."""
    threshold = policy.threshold(result)
    if threshold is None:
        best = result.answer
    else:
        best = result.hits[0] if result.hits and result.hits[0].score >= threshold else None
    if best is None:
        top = tuple(result.hits[:1])
        return Decision("escalate", top, top[0].score if top else None, _miss(top))
    others = [h for h in result.hits if h.article_id != best.article_id]
    # A sure top hit (at or over clarify_below) is only questioned on a near tie.
    margin = policy.margin(result) if best.score < policy.clarify_below else TIE_MARGIN
    if others and best.score - others[0].score < margin:
        choices = (best, *others[: policy.max_choices - 1])
        return Decision("clarify", choices, best.score, "close_scores")
    return Decision("answer", (best,), best.score, "confident")


def _miss(top: tuple[KbHit, ...]) -> str:
    return "low_score" if top else "no_hit"


def bot_query(text: str) -> str | None:
    """What the bot searches the knowledge base with for a customer's `text` (its first
    question when it is long, without markup); None when it would not search at all (emoji or
    punctuation only: it asks for words instead)."""
    if not has_words(text):
        return None
    query, _cut = search_text(text)
    return query if has_words(query) else None


class PolicyDecider:
    """The bot's decision as `kb evaluate` and `kb calibrate` replay it
    (hub.services.kb_evaluation.Decider): the same query preparation and `decide`, with the
    answer thresholds swappable so one search per question serves every candidate."""

    def __init__(self, policy: DecisionPolicy) -> None:
        self.policy = policy

    def prepare(self, text: str) -> str | None:
        """See `bot_query`."""
        return bot_query(text)

    def key(self, result: KbResult) -> str | None:
        """See `threshold_key`."""
        return threshold_key(result)

    def thresholds(self) -> dict[str, float]:
        """The configured answer thresholds."""
        return dict(self.policy.answer_thresholds)

    def margins(self) -> dict[str, float]:
        """The configured clarify margins, per key, with the general one under "*"."""
        return {"*": self.policy.clarify_margin, **self.policy.clarify_margins}

    def decide(
        self,
        result: KbResult,
        thresholds: Mapping[str, float] | None = None,
        margins: Mapping[str, float] | None = None,
    ) -> tuple[DecisionKind, tuple[str, ...]]:
        """(decision, article ids: the answer, the choices offered, or the best miss), with
        these thresholds and clarify margins by key in place of the configured ones."""
        policy = self.policy
        if thresholds is not None:
            policy = replace(policy, answer_thresholds=dict(thresholds))
        if margins is not None:
            policy = replace(policy, clarify_margins=dict(margins))
        decision = decide(result, policy)
        return decision.kind, tuple(h.article_id for h in decision.hits)
