"""BM25F over an opened Whoosh reader, scored a term at a time from cached postings.

Whoosh scores a disjunction a document at a time in Python (a union matcher, a length lookup
and a scorer call per matching posting): 60 ms median at 10k articles, where a customer's
question shares a few common words with thousands of them. Here each query term's postings
are read once per reader (the index changes only on commit) into an array of per-document
BM25F contributions; a query is then the sum of a few arrays and a partial sort. The figures
are Whoosh's BM25F ones (same idf, weights and lengths), see `bm25`.

Statistics count only the articles indexed now: Whoosh keeps deleted documents (replaced or
removed articles) in its document frequencies until their segment is rewritten, so scores
would depend on the history of edits. The idf subtracts the deleted documents' terms (stored
with each document, few between merges) and the average length is taken over the live
documents' stored (one-byte) lengths: incremental updates and a rebuild rank identically.

numpy makes the sums C loops; without it (the base install) plain dictionaries do the same.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

from whoosh.codec.whoosh3 import W3LeafMatcher

try:
    import numpy as np
except ImportError:  # the semantic extra is not installed: pure Python
    np = None  # type: ignore[assignment]

K1, B = 1.2, 0.75
FIELD = "text"
TERMS_FIELD = "terms"  # stored: the distinct terms of a document, space-separated
# Postings of this many terms are kept per reader; past it the cache starts again (a reader
# lives until the next commit, and a long-lived one must not grow without bound).
MAX_CACHED_TERMS = 50_000


def bm25(idf: float, tf: float, length: float, avgfl: float) -> float:
    """Whoosh's `scoring.bm25` with our K1 and B (tf is the boost-weighted frequency)."""
    return idf * ((tf * (K1 + 1)) / (tf + K1 * ((1 - B) + B * length / avgfl)))


class LiveBM25:
    """BM25F statistics and cached postings of one reader (one thread uses it at a time)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.size = reader.doc_count_all()
        self.lengths: list[int] = [0] * self.size
        self.dead_terms: Counter[str] = Counter()
        live_total = 0
        self.live_docs = 0
        for n in range(self.size):
            if reader.is_deleted(n):
                self.dead_terms.update(reader.stored_fields(n).get(TERMS_FIELD, "").split())
            else:
                length = reader.doc_field_length(n, FIELD, 1)
                self.lengths[n] = length
                live_total += length
                self.live_docs += 1
        self.avgfl = live_total / self.live_docs if self.live_docs else 1.0
        self._length_array = np.array(self.lengths, dtype=np.float64) if np is not None else None
        self._postings: dict[str, tuple[Any, Any]] = {}
        self._filters: dict[str, Any] = {}
        self._lock = threading.Lock()

    def doc_frequency(self, term: str) -> int:
        """How many live documents have the term."""
        return int(self.reader.doc_frequency(FIELD, term) - self.dead_terms[term])

    def idf(self, term: str) -> float:
        """log(live documents / (live documents with the term + 1)) + 1, as Whoosh's BM25F."""
        return math.log(max(self.live_docs, 1) / (self.doc_frequency(term) + 1)) + 1

    def _term(self, term: str) -> tuple[Any, Any]:
        """(document numbers, BM25F contributions) of one term, read once per reader."""
        found = self._postings.get(term)
        if found is not None:
            return found
        if np is None:
            docs, tfs = self._read_postings(term)
            idf, avgfl, lengths = self.idf(term), self.avgfl, self.lengths
            found = (
                docs,
                [bm25(idf, tf, lengths[d], avgfl) for d, tf in zip(docs, tfs, strict=True)],
            )
        else:
            doc_array, tf_array = self._read_blocks(term)
            contributions = bm25(
                self.idf(term), tf_array, self._length_array[doc_array], self.avgfl
            )
            found = (doc_array, contributions)
        with self._lock:
            if len(self._postings) >= MAX_CACHED_TERMS:
                self._postings.clear()
            self._postings[term] = found
        return found

    def _read_postings(
        self, term: str, reader: Any = None, base: int = 0
    ) -> tuple[list[int], list[float]]:
        """Document numbers and weighted frequencies of a term, a posting at a time."""
        reader = self.reader if reader is None else reader
        docs: list[int] = []
        tfs: list[float] = []
        if reader.doc_frequency(FIELD, term):
            matcher = reader.postings(FIELD, term)  # skips deleted documents
            while matcher.is_active():
                docs.append(matcher.id() + base)
                tfs.append(matcher.weight())
                matcher.next()
        return docs, tfs

    def _read_blocks(self, term: str) -> tuple[Any, Any]:
        """`_read_postings` as arrays, a whole posting block at a time where Whoosh stores
        blocks (segments without deletions): a third of a query's time went on reading
        postings one Python call each."""
        doc_parts: list[Any] = []
        tf_parts: list[Any] = []
        for leaf, base in self.reader.leaf_readers():
            if not leaf.doc_frequency(FIELD, term):
                continue
            matcher = leaf.postings(FIELD, term)
            if isinstance(matcher, W3LeafMatcher):
                while matcher.is_active():
                    matcher.id(), matcher.weight()  # loads the block's ids and weights
                    doc_parts.append(np.asarray(matcher._ids, dtype=np.intp) + base)
                    tf_parts.append(np.asarray(matcher._weights, dtype=np.float64))
                    matcher._next_block()
            else:  # postings inlined in the term's entry, or wrapped to skip deletions
                docs, tfs = self._read_postings(term, leaf, base)
                doc_parts.append(np.array(docs, dtype=np.intp))
                tf_parts.append(np.array(tfs, dtype=np.float64))
        if not doc_parts:
            return np.zeros(0, dtype=np.intp), np.zeros(0)
        return np.concatenate(doc_parts), np.concatenate(tf_parts)

    def _allowed(self, language: str) -> Any:
        """Document numbers of one language (a set, or a boolean array with numpy)."""
        found = self._filters.get(language)
        if found is None:
            docs = (
                list(self.reader.postings("language", language).all_ids())
                if (self.reader.doc_frequency("language", language))
                else []
            )
            if np is not None:
                found = np.zeros(self.size, dtype=bool)
                found[docs] = True
            else:
                found = set(docs)
            self._filters[language] = found
        return found

    def top(
        self, weights: Mapping[str, float], limit: int, language: str | None = None
    ) -> list[tuple[int, float]]:
        """(document number, score) of the best `limit` documents, best first.

        A document's score is the sum over query terms of weight x its BM25F contribution;
        ties go to the lower document number, as in Whoosh.
        """
        if not weights or not self.size or limit <= 0:
            return []
        if np is None:
            return self._top_python(weights, limit, language)
        scores = np.zeros(self.size)
        for term, weight in weights.items():
            docs, contributions = self._term(term)
            if len(docs):
                scores[docs] += contributions * weight if weight != 1.0 else contributions
        if language is not None:
            scores[~self._allowed(language)] = 0.0
        matched = np.flatnonzero(scores > 0)
        if len(matched) > limit:
            # The limit-th best score, then everything at least that good (ties included).
            kth = np.partition(scores[matched], len(matched) - limit)[len(matched) - limit]
            matched = matched[scores[matched] >= kth]
        order = np.lexsort((matched, -scores[matched]))[:limit]
        return [(int(matched[i]), float(scores[matched[i]])) for i in order]

    def _top_python(
        self, weights: Mapping[str, float], limit: int, language: str | None
    ) -> list[tuple[int, float]]:
        scores: dict[int, float] = {}
        for term, weight in weights.items():
            docs, contributions = self._term(term)
            for doc, contribution in zip(docs, contributions, strict=True):
                scores[doc] = scores.get(doc, 0.0) + contribution * weight
        allowed = self._allowed(language) if language is not None else None
        ranked = sorted(
            (item for item in scores.items() if allowed is None or item[0] in allowed),
            key=lambda item: (-item[1], item[0]),
        )
        return ranked[:limit]
