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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from hub.ports import KbHit, KbResult

DecisionKind = Literal["answer", "clarify", "escalate"]
TIE_MARGIN = 0.001


@dataclass(frozen=True, slots=True)
class DecisionPolicy:
    """Tunable by configuration (OMNIHUB_BOT_CLARIFY_MARGIN, OMNIHUB_BOT_MAX_MISSES)."""

    clarify_margin: float = 0.01
    clarify_below: float = 0.55  # at or above, only a near tie (TIE_MARGIN) is asked about
    max_choices: int = 3
    max_misses: int = 2  # misses in a row before the bot hands off


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
    if result.answer is None:
        top = tuple(result.hits[:1])
        return Decision("escalate", top, top[0].score if top else None, _miss(top))
    best = result.answer
    others = [h for h in result.hits if h.article_id != best.article_id]
    # A sure top hit (at or over clarify_below) is only questioned on a near tie.
    margin = policy.clarify_margin if best.score < policy.clarify_below else TIE_MARGIN
    if others and best.score - others[0].score < margin:
        choices = (best, *others[: policy.max_choices - 1])
        return Decision("clarify", choices, best.score, "close_scores")
    return Decision("answer", (best,), best.score, "confident")


def _miss(top: tuple[KbHit, ...]) -> str:
    return "low_score" if top else "no_hit"
