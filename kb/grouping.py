"""Clustering customer questions for the content-gap report."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from kb.text import terms

# Questions this similar (cosine of sentence embeddings) are taken as the same need.
EMBEDDING_THRESHOLD = 0.6
# Without embeddings: Jaccard overlap of index terms (stems, jieba words, bigrams).
OVERLAP_THRESHOLD = 0.3


class TextEncoder(Protocol):
    def encode(self, texts: Sequence[str]) -> Any: ...


def _clusters(n: int, similar: list[list[bool]]) -> list[list[int]]:
    # Single-link clustering via union-find: questions chain into one group through
    # close paraphrases, which is how the same need shows up in real traffic.
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if similar[i][j]:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def group_similar(texts: Sequence[str], encoder: TextEncoder | None = None) -> list[list[int]]:
    """Indexes into `texts` grouped by meaning, largest group first (ties: first seen)."""
    n = len(texts)
    if n == 0:
        return []
    if encoder is not None:
        vectors = encoder.encode(list(texts))
        sims = vectors @ vectors.T
        return _clusters(
            n, [[bool(sims[i][j] >= EMBEDDING_THRESHOLD) for j in range(n)] for i in range(n)]
        )
    sets = [set(terms(t)) for t in texts]
    similar = [
        [
            bool(sets[i] and sets[j])
            and len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= OVERLAP_THRESHOLD
            for j in range(n)
        ]
        for i in range(n)
    ]
    return _clusters(n, similar)
