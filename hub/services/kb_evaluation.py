"""Measuring a knowledge base on labelled questions, and calibrating the bot's answer
thresholds on them (`omnihub kb evaluate` / `omnihub kb calibrate`, docs/kb-evaluation.md).

Questions are JSON Lines, `{"text": ..., "expected": article id or null}` (null: no article
answers it and the bot must not answer), with an optional `"language"` to report under. Each
question is searched once, as the bot searches (its query preparation, the live index, the
hits the bot sees), and the bot's own decision (`Decider`, bot/policy.py) is replayed on the
result, so calibration tries every candidate threshold without searching again.

Figures: hit@1, hit@3 and MRR over the 10 hits of each in-scope question; answer precision =
answers with the expected article / all answers (out-of-scope ones answered count against
it); in-scope accuracy = answered right / in-scope questions; out-of-scope recall = out-of-
scope questions not answered and not offered choices (escalated, or asked to rephrase).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hub.errors import ValidationFailed
from hub.ports import KbResult

SEARCH_LIMIT = 10  # hits per question, for MRR; the bot decides on the first few
MAX_QUESTIONS = 100_000
MAX_LINE_ERRORS = 20  # reported at once; a file with more is the wrong file
ALL = "all"


class Decider(Protocol):
    """The bot's decision, replayable on a search result (bot.policy.PolicyDecider)."""

    def prepare(self, text: str) -> str | None:
        """The query the bot searches with; None when it would ask for words instead."""
        ...

    def key(self, result: KbResult) -> str | None:
        """The answer-threshold key of a result ("zh.bm25"); None when the index's verdict
        applies whatever is configured."""
        ...

    def thresholds(self) -> dict[str, float]:
        """The answer thresholds configured now, by key."""
        ...

    def margins(self) -> dict[str, float]:
        """The clarify margins configured now, by key; the general one under "*"."""
        ...

    def decide(
        self,
        result: KbResult,
        thresholds: Mapping[str, float] | None = None,
        margins: Mapping[str, float] | None = None,
    ) -> tuple[str, tuple[str, ...]]:
        """(answer | clarify | escalate, article ids) with these thresholds and clarify
        margins by key (None: the configured ones)."""
        ...


@dataclass(frozen=True, slots=True)
class Question:
    line: int
    text: str
    expected: str | None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Replay:
    """One question searched: what the bot saw, and under which threshold key."""

    question: Question
    result: KbResult | None  # None: the bot would not search (no words) or could not
    key: str | None
    language: str  # the question's own, else the language its threshold key names


Search = Callable[[str], Awaitable[KbResult]]


def read_questions(path: Path) -> list[Question]:
    """The questions of a JSON Lines file; ValidationFailed naming FILE:LINE for bad rows
    (every bad row, up to MAX_LINE_ERRORS), nothing read when any is bad."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{path}: cannot read ({exc.strerror})", code="bad_file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = raw[: exc.start].count(b"\n") + 1
        raise ValidationFailed(f"{path}:{bad}: not UTF-8 text", code="bad_file") from None
    questions: list[Question] = []
    errors: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            questions.append(_question(n, line))
        except ValueError as exc:
            errors.append(f"{path}:{n}: {exc}")
            if len(errors) >= MAX_LINE_ERRORS:
                errors.append(f"{path}: stopped after {MAX_LINE_ERRORS} bad lines")
                break
        if len(questions) > MAX_QUESTIONS:
            errors.append(f"{path}: more than {MAX_QUESTIONS} questions")
            break
    if errors:
        raise ValidationFailed("\n".join(errors), code="bad_file")
    if not questions:
        raise ValidationFailed(f"{path}: no questions", code="bad_file")
    return questions


def _question(n: int, line: str) -> Question:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg}, column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError('expected an object {"text": ..., "expected": ...}')
    text, expected, language = row.get("text"), row.get("expected", ...), row.get("language")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('"text" must be a non-empty string')
    if expected is ...:
        raise ValueError('"expected" is missing (an article id, or null when none answers it)')
    if expected is not None and (not isinstance(expected, str) or not expected.strip()):
        raise ValueError('"expected" must be an article id or null')
    if language is not None and (not isinstance(language, str) or not language.strip()):
        raise ValueError('"language" must be a language tag such as "en" or "zh"')
    return Question(n, text, expected.strip() if expected else None, language)


async def replay(questions: Sequence[Question], search: Search, decider: Decider) -> list[Replay]:
    """Search every question as the bot would (one search each)."""
    done: list[Replay] = []
    for question in questions:
        query = decider.prepare(question.text)
        result: KbResult | None = None
        if query is not None:
            try:
                result = await search(query)
            except ValueError:
                result = None  # the bot escalates an unusable query
        key = decider.key(result) if result is not None else None
        language = question.language or (key.split(".")[0] if key else "other")
        done.append(Replay(question, result, key, language))
    return done


@dataclass(slots=True)
class Figures:
    """Counts of one group of questions; the ratios are None when undefined."""

    in_scope: int = 0
    hit1: int = 0
    hit3: int = 0
    reciprocal_ranks: float = 0.0
    answered: int = 0
    answered_right: int = 0
    clarified: int = 0
    clarified_right: int = 0  # the expected article among the choices offered
    oos: int = 0
    oos_held: int = 0

    @property
    def questions(self) -> int:
        return self.in_scope + self.oos

    def ratios(self) -> dict[str, float | None]:
        return {
            "hit@1": _ratio(self.hit1, self.in_scope),
            "hit@3": _ratio(self.hit3, self.in_scope),
            "MRR": _ratio(self.reciprocal_ranks, self.in_scope),
            "precision": _ratio(self.answered_right, self.answered),
            "accuracy": _ratio(self.answered_right, self.in_scope),
            "with choice": _ratio(self.answered_right + self.clarified_right, self.in_scope),
            "OOS recall": _ratio(self.oos_held, self.oos),
        }


def _ratio(n: float, d: int) -> float | None:
    return n / d if d else None


def count(
    replays: Iterable[Replay],
    decider: Decider,
    thresholds: Mapping[str, float] | None = None,
    margins: Mapping[str, float] | None = None,
    group: Callable[[Replay], str] = lambda r: r.language,
) -> dict[str, Figures]:
    """Figures per group (by default the language) and over all (`ALL`), with the decider's
    thresholds and margins or these."""
    figures: dict[str, Figures] = {}
    for r in replays:
        kind, ids = (
            decider.decide(r.result, thresholds, margins) if r.result else ("escalate", ())
        )
        hits = [h.article_id for h in r.result.hits] if r.result else []
        for name in {group(r), ALL}:
            f = figures.setdefault(name, Figures())
            expected = r.question.expected
            if kind == "answer":
                f.answered += 1
                f.answered_right += expected is not None and ids[0] == expected
            if expected is None:
                f.oos += 1
                f.oos_held += kind == "escalate"
                continue
            f.in_scope += 1
            f.clarified += kind == "clarify"
            f.clarified_right += kind == "clarify" and expected in ids
            f.hit1 += hits[:1] == [expected]
            f.hit3 += expected in hits[:3]
            if expected in hits:
                f.reciprocal_ranks += 1 / (hits.index(expected) + 1)
    return figures


# --- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """One key's calibration: the threshold and margin picked and what they give."""

    key: str
    current: float | None  # the threshold configured now; None: the index's own verdict
    threshold: float | None  # None: nothing to pick from (no question of the key scored)
    margin: float | None
    figures: Figures
    met: bool  # both targets met
    note: str


MAX_CANDIDATES = 300  # thresholds tried per key (each replays every question of the key)
# Clarify margins tried: from never asking to asking on a close call of an eighth of a point.
MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.12)


def candidates(scores: Iterable[float]) -> list[float]:
    """Thresholds that change a decision: midway between neighbouring top scores (robust to
    a score moving a little), the lowest score, and just above the highest (answer none)."""
    points = sorted({round(s, 6) for s in scores})
    if not points:
        return []
    if len(points) > MAX_CANDIDATES:
        # Every score of thousands of questions would cost a replay each; evenly spaced
        # quantiles move the picked threshold by a fraction of a question per step.
        step = (len(points) - 1) / (MAX_CANDIDATES - 1)
        points = sorted({points[round(i * step)] for i in range(MAX_CANDIDATES)})
    found = [points[0]]
    for low, high in itertools.pairwise(points):
        # 4 decimals, still above `low` (rounded first: 0.15 must not become 0.1501)
        mid = math.ceil(round((low + high) / 2 * 10_000, 6)) / 10_000
        found.append(mid if low < mid <= high else high)
    found.append(math.floor(points[-1] * 10_000 + 1) / 10_000)
    return found


def calibrate(
    replays: Sequence[Replay],
    decider: Decider,
    target_precision: float,
    min_oos_recall: float,
) -> list[Choice]:
    """Per threshold key: the answer threshold and clarify margin that answer the most
    in-scope questions right with answer precision >= `target_precision` and out-of-scope
    recall >= `min_oos_recall` (then: the most resolved with a choice, the most escalated);
    when none does, the pair that falls least short of them (and `met` False)."""
    thresholds, margins = decider.thresholds(), decider.margins()
    choices: list[Choice] = []
    for key in sorted({r.key for r in replays if r.key is not None}):
        mine = [r for r in replays if r.key == key]
        scores = [r.result.hits[0].score for r in mine if r.result and r.result.hits]
        tried = sorted({*MARGINS, margins.get(key, margins["*"])})
        best: tuple[tuple[float, ...], float, float, Figures, bool] | None = None
        for threshold, margin in itertools.product(candidates(scores), tried):
            f = count(
                mine,
                decider,
                {**thresholds, key: threshold},
                {**margins, key: margin},
                group=lambda r: ALL,
            )[ALL]
            precision = _ratio(f.answered_right, f.answered)
            recall = _ratio(f.oos_held, f.oos)
            met = (
                precision is not None
                and precision >= target_precision
                and (recall is None or recall >= min_oos_recall)
            )
            shortfall = max(
                target_precision - (precision if precision is not None else 0.0),
                min_oos_recall - recall if recall is not None else 0.0,
            )
            resolved = f.answered_right + f.clarified_right
            rank = (1.0, f.answered_right, resolved, f.oos_held) if met else (0.0, -shortfall)
            if best is None or rank > best[0]:
                best = (rank, threshold, margin, f, met)
        if best is None:
            note = "no question of this kind found an article: nothing to calibrate"
            choices.append(Choice(key, thresholds.get(key), None, None, Figures(), False, note))
            continue
        _rank, threshold, margin, f, met = best
        if met and f.oos == 0:
            note = "no out-of-scope questions: recall not measured; add some"
        elif met:
            note = "targets met"
        else:
            note = "targets not reachable: the best trade-off is shown"
        choices.append(Choice(key, thresholds.get(key), threshold, margin, f, met, note))
    return choices


def settings_lines(thresholds: Mapping[str, float], margins: Mapping[str, float]) -> list[str]:
    """The TOML lines, then the environment variables, that configure these thresholds and
    clarify margins (by key)."""
    lines: list[str] = []
    named = (("bot_answer_thresholds", thresholds), ("bot_clarify_margins", margins))
    for name, values in named:
        pairs = ", ".join(f"{json.dumps(k)} = {v}" for k, v in sorted(values.items()))
        lines.append(f"{name} = {{ {pairs} }}")
    for name, values in named:
        lines.append(f"OMNIHUB_{name.upper()}='{json.dumps(dict(sorted(values.items())))}'")
    return lines


# --- reports -----------------------------------------------------------------------------------


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def evaluation_table(figures: Mapping[str, Figures]) -> list[str]:
    """One row per language and one over all."""
    columns = ("hit@1", "hit@3", "MRR", "precision", "accuracy", "OOS recall")
    lines = [
        f"{'language':<10}{'in scope':>9}{'OOS':>6}{'answered':>9}"
        + "".join(f"{c:>11}" for c in columns)
    ]
    for name in sorted(figures, key=lambda n: (n == ALL, n)):
        f = figures[name]
        ratios = f.ratios()
        lines.append(
            f"{name:<10}{f.in_scope:>9}{f.oos:>6}{f.answered:>9}"
            + "".join(f"{_cell(ratios[c]):>11}" for c in columns)
        )
    return lines


def calibration_table(choices: Sequence[Choice]) -> list[str]:
    """One row per threshold key: now, picked, and the figures at the pick."""
    lines = [
        f"{'key':<13}{'in scope':>9}{'OOS':>5}{'now':>8}{'picked':>8}{'margin':>8}"
        f"{'precision':>10}{'OOS recall':>11}{'accuracy':>9}{'w/ choice':>10}  note"
    ]
    for c in choices:
        ratios = c.figures.ratios()
        now = "index" if c.current is None else f"{c.current:.4f}"
        picked = "-" if c.threshold is None else f"{c.threshold:.4f}"
        margin = "-" if c.margin is None else f"{c.margin:.3f}"
        lines.append(
            f"{c.key:<13}{c.figures.in_scope:>9}{c.figures.oos:>5}{now:>8}{picked:>8}"
            f"{margin:>8}{_cell(ratios['precision']):>10}{_cell(ratios['OOS recall']):>11}"
            f"{_cell(ratios['accuracy']):>9}{_cell(ratios['with choice']):>10}  {c.note}"
        )
    return lines
