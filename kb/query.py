"""The ways one customer message is searched: as written, by its question, by its core.

Customers wrap their question in words no article can match: a greeting and a story around
the question ("Hi, I bought skates last week. How do I return them? Thanks"), or the name of
the very thing they bought ("I want to return my rocket skates."). Those words add to the
query's BM25 ceiling and pull its embedding away from every article's, so the question scores
far below its bare form (0.40 against 0.94) and is handed to a person.

So the index scores a few views of the message (kb.index). The message as written ranks the
hits; the other views only confirm: when their best article is the top hit, its score rises to
theirs (they never reorder the hits: a question sentence alone can miss what the sentence
before it said, a core lacks the question's specifics):

- its question sentences, when it has several sentences (those ending in a question mark,
  else those opening like a question);
- the core of the message and of each question sentence: the text with the words the
  knowledge base has never seen (a product name, an order number, a typo) replaced by
  "something", when they are at most as many as the words it knows, counted at CORE_WEIGHT.
  A message mostly made of unknown words is about something the knowledge base does not
  cover and keeps its low score.

Every view is scored on the same scale (kb.fusion), so the answer thresholds stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from kb.text import has_cjk, terms, terms_with_spans

MAX_VIEWS = 4
# The core stands in for the question, not is it: its scores count at this share. On CLINC150
# dev (bench/bot_decisions.py) 0.85 gains in-scope answers and loses no out-of-scope recall
# at the unchanged answer threshold; at 1.0 recall fell from 0.83 to 0.78.
CORE_WEIGHT = 0.85
# What an unknown run of words becomes in the core: keeping a noun's place keeps the sentence
# a question about *something* ("I want to return my something."), which embeds closer to the
# article's questions than the same sentence with a hole, and no closer to unrelated ones.
PLACEHOLDER = "something"
# The placeholder is for the encoder: the customer did not write it, so BM25 leaves it out.
PLACEHOLDER_TERMS = frozenset(terms(PLACEHOLDER))
MAX_QUESTIONS = 2
# A sentence ends at . ! ? (or their full-width forms) followed by a space or the end, or at a
# line break; "e.g." or "3.5" mostly stay whole, and a wrong cut only adds a view.
_SENTENCE_RE = re.compile(r"[^.!?。！？\n]+(?:[.!?。！？]+(?=\s|$)|[。！？]+|$)|[^\n]+?(?=\n|$)")
_QUESTION_START = re.compile(
    r"^(?:how|what|where|when|why|who|which|can|could|do|does|did|is|are|will|would|should"
    r"|may|have|has)\b",
    re.IGNORECASE,
)
_QUESTION_ZH = re.compile(r"吗|怎么|如何|什么|哪|多少|能否|是否|为什么|几")


def sentences(text: str) -> list[str]:
    """The text's sentences, stripped, in order."""
    found = (m.group(0).strip() for m in _SENTENCE_RE.finditer(text))
    return [s for s in found if s]


def question_sentences(text: str) -> list[str]:
    """The sentences that ask something, when the text has more than one sentence."""
    parts = sentences(text)
    if len(parts) < 2:
        return []
    asked = [s for s in parts if s.endswith(("?", "？"))]
    if not asked:
        asked = [
            s for s in parts if _QUESTION_START.match(s) or (has_cjk(s) and _QUESTION_ZH.search(s))
        ]
    return asked[:MAX_QUESTIONS]


def core(text: str, known: Callable[[str], bool]) -> str | None:
    """`text` with each run of its Latin-script words the index does not know (`known(term)`
    false) replaced by PLACEHOLDER; None when it has none, or they are more than half of its
    words."""
    unknown: list[tuple[int, int]] = []
    seen = 0
    for term, start, end in terms_with_spans(text):
        if has_cjk(term):
            continue  # bigrams of any question are mostly unknown; Chinese keeps its text
        seen += 1
        if not known(term):
            unknown.append((start, end))
    if not unknown or len(unknown) * 2 > seen:
        return None
    out: list[str] = []
    pos = 0
    for start, end in unknown:
        gap = text[pos:start]
        if pos and not gap.strip() and out and out[-1] == PLACEHOLDER:
            pos = end  # one placeholder for a run of unknown words ("rocket skates")
            continue
        out += [gap, PLACEHOLDER]
        pos = end
    out.append(text[pos:])
    return " ".join("".join(out).split())


def views(text: str, known: Callable[[str], bool] | None) -> list[tuple[str, float]]:
    """The texts to score for one message, each with the share of its scores that counts
    (CORE_WEIGHT for a core, 1 otherwise), the message itself first; no cores when `known`
    is None (see the module docstring)."""
    found: dict[str, float] = {}
    for candidate in (text, *question_sentences(text)):
        found.setdefault(candidate, 1.0)
        reduced = core(candidate, known) if known is not None else None
        if reduced:
            found.setdefault(reduced, CORE_WEIGHT)
    return list(found.items())[:MAX_VIEWS]
