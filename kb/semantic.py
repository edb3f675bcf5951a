"""The knowledge base's semantic stage: cosine search over embedded article titles/questions.

Each article contributes a few short texts (title, alternate questions); an article's score
for a query blends its best cosine over those texts with the cosine to their mean direction
(see CENTROID_WEIGHT).

On disk, under ``cache_dir``:

* ``vectors.npz``: a text -> vector cache (rows keyed by sha1 of the normalised text, plus the
  encoder's fingerprint), so re-setting unchanged texts, in this process or the next, encodes
  nothing; rewritten only when new texts were encoded.
* ``articles.json``: which texts each article has, rewritten on every change, so the index
  survives a restart (texts missing from the vector cache are re-encoded on open).

Both are replaced atomically (temporary file, fsync, ``os.replace``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol

from hub.storage.files import atomic_write

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npz"
ARTICLES_FILE = "articles.json"
_FORMAT = 1
_QUERY_CACHE_SIZE = 512  # customers repeat questions; a hit skips the ~10 ms encode
# all-MiniLM-L6-v2 reads English; Chinese comes out mostly [UNK], and mostly-[UNK] texts embed
# nearly identically, so they would match each other with cosines near 1. Texts below this
# share of known word pieces are neither indexed nor searched (BM25 serves them).
DEFAULT_MIN_COVERAGE = 0.75
# Vectors of texts no article uses any more are kept (an edit may be undone, a rebuild may
# follow a clear) until they outnumber the used ones by this much.
_STALE_SLACK = 1000
# A large index is searched in two steps: each article's mean vector first (one row per
# article), then the exact best text of the PREFILTER_ARTICLES closest articles. At 10k
# articles (75k texts) the exact product over every text read 115 MB per query (~20 ms).
# Approximate only in that an article whose mean is far but one text near could be missed.
PREFILTER_MIN_ARTICLES = 2000
PREFILTER_ARTICLES = 300
# An article's score = (1 - w) * best cosine over its texts + w * cosine to the mean of its
# texts (normalised). The best text alone over-rewards one lucky paraphrase; the mean stands
# for what all the ways of asking share (alone it is worse: banking77 full 0.846 semantic-only
# hit@1). Fused with BM25 (kb/fusion.py), hit@1 on the dev sets with the best text alone ->
# this blend: banking77 with ten questions 0.839 -> 0.851, banking77 full 0.935 -> 0.934,
# CLINC150 0.904 -> 0.921.
CENTROID_WEIGHT = 0.25

_Entry = tuple[str, str]  # (text key, normalised text)


class Encoder(Protocol):
    """What the vector index needs of a sentence encoder (kb.embedding, kb.multilingual)."""

    dim: int
    fingerprint: str  # identifies the weights and settings; keys the vector cache

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors of texts to be found (titles, questions, bodies), one row each."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors of search queries (E5 reads them with another prefix)."""
        ...

    def coverage(self, text: str) -> float:
        """Share of the text the model can read (0.0 for blank text)."""
        ...


def normalise_text(text: str) -> str:
    """What gets embedded and keyed: whitespace collapsed (the tokenizer ignores it anyway)."""
    return " ".join(text.split())


def text_key(text: str) -> str:
    """Cache key of an already normalised text."""
    return hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """Immutable search state; replaced wholesale so searches never see a half-update."""

    article_ids: tuple[str, ...]
    matrix: NDArray[np.float32]  # (texts, dim), rows grouped by article in article_ids order
    starts: NDArray[np.intp]  # first row of each article (every article has >= 1 row)
    counts: NDArray[np.intp]  # rows of each article
    centroids: NDArray[np.float32]  # (articles, dim) mean direction of each article's rows


class VectorIndex:
    """Embeddings of each article's title and alternate questions; cosine search.

    Opening restores the index last persisted in ``cache_dir``; every change is persisted
    before the method returns (failures to write are logged, the in-memory index still
    changes).

    Texts the model cannot read (``encoder.coverage(text) < min_coverage``: in practice
    Chinese) are not indexed, and :meth:`scores` returns nothing for such a query.

    Thread safety: any number of threads may call :meth:`scores` while one thread updates;
    updates serialise on a lock and publish a new immutable snapshot.
    """

    def __init__(
        self,
        encoder: Encoder,
        cache_dir: Path,
        *,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        centroid_weight: float = CENTROID_WEIGHT,
    ) -> None:
        """Open the index persisted in ``cache_dir`` (created empty if there is none)."""
        import numpy as np

        self.encoder = encoder
        self.cache_dir = Path(cache_dir)
        self.min_coverage = min_coverage
        self.centroid_weight = centroid_weight
        self.encoded_count = 0  # texts this index ran through the model (cache misses)
        self._write_lock = threading.Lock()
        self._vectors: dict[str, NDArray[np.float32]] = {}  # text key -> unit vector
        self._articles: dict[str, tuple[_Entry, ...]] = {}
        self._empty = np.zeros((0, encoder.dim), dtype=np.float32)
        none = np.zeros(0, dtype=np.intp)
        self._snapshot = _Snapshot((), self._empty, none, none, self._empty)
        self._query_lock = threading.Lock()
        self._query_cache: OrderedDict[str, NDArray[np.float32] | None] = OrderedDict()
        self._vectors_dirty = False  # encoded texts not yet in the on-disk cache
        with self._write_lock:
            self._read_vectors()
            saved = self._read_articles()
            if saved:
                # Re-encodes only what the vector cache lacks (e.g. after a model change).
                self._articles = self._prepare(saved.items())
                if self._vectors_dirty:
                    self._commit()
                else:
                    self._publish()

    @classmethod
    def load(
        cls, encoder: Encoder, cache_dir: Path, *, min_coverage: float = DEFAULT_MIN_COVERAGE
    ) -> VectorIndex:
        """The index persisted in ``cache_dir``; the same as the constructor."""
        return cls(encoder, cache_dir, min_coverage=min_coverage)

    def __len__(self) -> int:
        """Number of indexed articles."""
        return len(self._snapshot.article_ids)

    def article_ids(self) -> set[str]:
        """Ids of the indexed articles."""
        return set(self._snapshot.article_ids)

    def texts(self, article_id: str) -> list[str]:
        """The normalised texts indexed for an article (empty if unknown)."""
        return [text for _key, text in self._articles.get(article_id, ())]

    def set_article(self, article_id: str, texts: Sequence[str]) -> None:
        """Replace one article's vectors; no usable texts removes the article."""
        self.set_articles([(article_id, texts)])

    def set_articles(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Replace these articles' vectors, encoding every uncached text in one batched pass."""
        with self._write_lock:
            self._articles.update(self._prepare(items))
            self._commit()

    def replace_all(self, items: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Make these the only indexed articles; searches see the old set until the swap."""
        with self._write_lock:
            self._articles = self._prepare(items)
            self._commit()

    def remove(self, article_ids: Sequence[str]) -> None:
        """Drop these articles (unknown ids are ignored)."""
        with self._write_lock:
            for article_id in article_ids:
                self._articles.pop(article_id, None)
            self._commit()

    def clear(self) -> None:
        """Drop every article; cached text vectors stay for a following rebuild."""
        with self._write_lock:
            self._articles = {}
            self._commit()

    def scores(self, query: str, limit: int = 50) -> list[tuple[str, float]]:
        """Article ids by their blended cosine score for ``query`` (module doc), best first.

        Empty when the index is empty or the model cannot read the query (see class doc).
        """
        if not self._snapshot.article_ids or limit <= 0:
            return []
        vector = self.query_vector(query)
        return [] if vector is None else self.scores_of(vector, limit)

    def scores_of(self, vector: NDArray[np.float32], limit: int) -> list[tuple[str, float]]:
        """:meth:`scores` for an already encoded query (see :meth:`query_vector`)."""
        import numpy as np

        snapshot = self._snapshot
        if not snapshot.article_ids or limit <= 0:
            return []
        to_centroid = snapshot.centroids @ vector
        if len(snapshot.article_ids) >= PREFILTER_MIN_ARTICLES:
            articles = _top_indexes(to_centroid, PREFILTER_ARTICLES)
            articles.sort()  # rows stay in article order
            starts, counts = snapshot.starts[articles], snapshot.counts[articles]
            rows = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            sub_starts = np.cumsum(counts) - counts
            best = np.maximum.reduceat(snapshot.matrix[rows] @ vector, sub_starts)
            to_centroid = to_centroid[articles]
        else:
            articles = np.arange(len(snapshot.article_ids))
            best = np.maximum.reduceat(snapshot.matrix @ vector, snapshot.starts)
        weight = self.centroid_weight
        blended = (1 - weight) * best + weight * to_centroid
        top = _top_indexes(blended, limit)
        return [(snapshot.article_ids[articles[i]], float(blended[i])) for i in top]

    def save(self) -> None:
        """Write the vector cache and the article mapping now (changes already do this)."""
        with self._write_lock:
            self._write_vectors()
            self._write_articles()

    # --- internals (callers hold _write_lock) -----------------------------------------------

    def _prepare(self, items: Iterable[tuple[str, Sequence[str]]]) -> dict[str, tuple[_Entry, ...]]:
        """Entries per article, encoding (batched) the texts not cached yet.

        Articles left without usable texts map to () and are dropped by _commit.
        """
        prepared: dict[str, tuple[_Entry, ...]] = {}
        pending: dict[str, str] = {}  # key -> text still to encode
        for article_id, texts in items:
            entries: dict[str, str] = {}
            for raw in texts:
                text = normalise_text(raw)
                key = text_key(text)
                if not text or key in entries:
                    continue
                # Cached vectors passed the coverage check when they were encoded.
                if key not in self._vectors and key not in pending:
                    if self.encoder.coverage(text) < self.min_coverage:
                        continue
                    pending[key] = text
                entries[key] = text
            prepared[str(article_id)] = tuple(entries.items())
        if pending:
            vectors = self.encoder.encode(list(pending.values()))
            for key, vector in zip(pending, vectors, strict=True):
                self._vectors[key] = vector
            self.encoded_count += len(pending)
            self._vectors_dirty = True
        return prepared

    def _commit(self) -> None:
        """Publish the current articles to searches and persist them."""
        self._articles = {a: entries for a, entries in self._articles.items() if entries}
        self._publish()
        try:
            if self._vectors_dirty:
                self._write_vectors()
            self._write_articles()
        except OSError as exc:
            log.warning("kb: cannot persist the vector index in %s: %s", self.cache_dir, exc)

    def _publish(self) -> None:
        import numpy as np

        ids = tuple(a for a, entries in self._articles.items() if entries)
        rows = [self._vectors[key] for a in ids for key, _text in self._articles[a]]
        counts = [len(self._articles[a]) for a in ids]
        starts = np.zeros(len(ids), dtype=np.intp)
        if counts:
            starts[1:] = np.cumsum(counts[:-1])
        matrix = np.stack(rows) if rows else self._empty
        counts_array = np.asarray(counts, dtype=np.intp)
        centroids = self._empty
        if counts:
            sums = np.add.reduceat(matrix, starts)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        self._snapshot = _Snapshot(ids, matrix, starts, counts_array, centroids)

    def query_vector(self, query: str) -> NDArray[np.float32] | None:
        """The query's unit vector, or None when it is blank or the model cannot read it;
        LRU-cached."""
        text = normalise_text(query)
        if not text:
            return None
        with self._query_lock:
            if text in self._query_cache:
                self._query_cache.move_to_end(text)
                return self._query_cache[text]
        vector = None
        if self.encoder.coverage(text) >= self.min_coverage:
            vector = self.encoder.encode_queries([text])[0]
        with self._query_lock:
            self._query_cache[text] = vector
            if len(self._query_cache) > _QUERY_CACHE_SIZE:
                self._query_cache.popitem(last=False)
        return vector

    def _write_vectors(self) -> None:
        import numpy as np

        used = {key for entries in self._articles.values() for key, _text in entries}
        if len(self._vectors) - len(used) > len(used) + _STALE_SLACK:
            self._vectors = {k: v for k, v in self._vectors.items() if k in used}
        keys = list(self._vectors)
        matrix = np.stack([self._vectors[k] for k in keys]) if keys else self._empty
        meta = {"format": _FORMAT, "encoder": self.encoder.fingerprint, "keys": keys}

        def write(f: IO[bytes]) -> None:
            np.savez(f, vectors=matrix, meta=np.array(json.dumps(meta)))

        atomic_write(self.cache_dir / VECTORS_FILE, write)
        self._vectors_dirty = False

    def _write_articles(self) -> None:
        data = {
            "format": _FORMAT,
            "articles": {a: [text for _key, text in e] for a, e in self._articles.items()},
        }
        payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
        atomic_write(self.cache_dir / ARTICLES_FILE, lambda f: f.write(payload))

    def _read_vectors(self) -> None:
        """Seed the text -> vector cache; ignore it if unreadable or from another model."""
        import numpy as np

        path = self.cache_dir / VECTORS_FILE
        if not path.is_file():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                matrix = np.asarray(data["vectors"], dtype=np.float32)
            keys = [str(k) for k in meta["keys"]]
            usable = (
                meta.get("format") == _FORMAT
                and meta.get("encoder") == self.encoder.fingerprint
                and matrix.shape == (len(keys), self.encoder.dim)
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("kb: ignoring unreadable vector cache %s: %s", path, exc)
            return
        if not usable:
            log.info("kb: vector cache %s is from another model or format; re-encoding", path)
            return
        self._vectors.update(zip(keys, matrix, strict=True))

    def _read_articles(self) -> dict[str, list[str]]:
        path = self.cache_dir / ARTICLES_FILE
        if not path.is_file():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            return {str(a): [str(t) for t in texts] for a, texts in data["articles"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("kb: ignoring unreadable %s (rebuild the index): %s", path, exc)
            return {}


def _top_indexes(scores: NDArray[np.float32], limit: int) -> NDArray[np.intp]:
    """Indexes of the `limit` highest scores, best first (ties: lower index first)."""
    import numpy as np

    if limit < scores.shape[0]:
        top = np.argpartition(-scores, limit - 1)[:limit]
    else:
        top = np.arange(scores.shape[0])
    result: NDArray[np.intp] = top[np.argsort(-scores[top], kind="stable")]
    return result
