"""Search-result snippets: the best-matching sentence, HTML-escaped, matches in <mark>."""

from __future__ import annotations

import bisect
import html
import re
from collections.abc import Collection, Sequence
from functools import lru_cache

from kb.text import clean_text, distinct_terms, fold_chinese, terms_with_spans

SNIPPET_CHARS = 180
_SENTENCE_RE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")


class _Fragments:
    """An article's sentences, plus one lower-cased string of them all for fast probing."""

    __slots__ = ("joined", "starts", "texts")

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts: list[str] = []
        for text in texts:
            for match in _SENTENCE_RE.finditer(clean_text(text)):
                if fragment := match.group(0).strip():
                    self.texts.append(fragment)
        self.starts: list[int] = []
        pos = 0
        for fragment in self.texts:
            self.starts.append(pos)
            pos += len(fragment) + 1
        # Folded like the terms (Traditional -> Simplified, same length) for the probes.
        self.joined = fold_chinese("\n".join(self.texts)).lower()


@lru_cache(maxsize=4096)
def _fragments(texts: tuple[str, ...]) -> _Fragments:
    return _Fragments(texts)


@lru_cache(maxsize=100_000)
def _fragment_terms(fragment: str) -> frozenset[str]:
    return distinct_terms(fragment)


def _spans(text: str, wanted: Collection[str]) -> list[tuple[int, int]]:
    spans = sorted((s, e) for t, s, e in terms_with_spans(text) if t in wanted)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        # Search-mode words overlap (信用, 信用卡): one <mark> around the union.
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _best_fragment(fragments: _Fragments, query_terms: frozenset[str]) -> str:
    if not fragments.texts:
        return ""
    # A stem keeps the first three letters of its word, so only fragments containing such a
    # prefix can match: one regex scan instead of analysing every sentence of the article.
    probes = sorted({t[:3] for t in query_terms}, key=len, reverse=True)
    candidates: set[int] = set()
    if probes:
        pattern = re.compile("|".join(re.escape(p) for p in probes))
        for match in pattern.finditer(fragments.joined):
            candidates.add(bisect.bisect_right(fragments.starts, match.start()) - 1)
    best, best_key = fragments.texts[0], (0, -len(fragments.texts[0]))
    for i in sorted(candidates):
        fragment = fragments.texts[i]
        key = (len(_fragment_terms(fragment) & query_terms), -len(fragment))
        if key > best_key:
            best, best_key = fragment, key
    return best


def highlight(texts: Sequence[str], query_terms: Collection[str]) -> str:
    """Snippet from the sentence of `texts` that matches most distinct query terms.

    `texts` are plain-text candidates in order of preference (questions, then body); the
    result is safe to insert into HTML as is.
    """
    wanted = frozenset(query_terms)
    best = _best_fragment(_fragments(tuple(texts)), wanted)
    if not best:
        return ""
    spans = _spans(best, wanted)
    start = 0
    if len(best) > SNIPPET_CHARS and spans:
        # Start a little before the first match so it reads in context.
        start = max(0, min(spans[0][0] - 30, len(best) - SNIPPET_CHARS))
    end = min(len(best), start + SNIPPET_CHARS)
    parts: list[str] = ["…" if start > 0 else ""]
    pos = start
    for s, e in spans:
        if e <= start or s >= end:
            continue
        s, e = max(s, start), min(e, end)
        parts.append(html.escape(best[pos:s]))
        parts.append(f"<mark>{html.escape(best[s:e])}</mark>")
        pos = e
    parts.append(html.escape(best[pos:end]))
    if end < len(best):
        parts.append("…")
    return "".join(parts)
