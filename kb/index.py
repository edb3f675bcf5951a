"""The Whoosh-backed `KnowledgeIndex`: BM25F over title, alternate questions and body, with
an optional semantic stage fused in (see `kb.fusion`)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from whoosh import index, writing
from whoosh.analysis import CompositeAnalyzer
from whoosh.fields import ID, STORED, TEXT, Schema
from whoosh.query import Or, Query, Term
from whoosh.scoring import BM25F, BM25FScorer
from whoosh.searching import Searcher

from hub.ports import KbArticle, KbHit, KbResult
from kb import fusion
from kb.grouping import group_similar
from kb.highlight import highlight
from kb.synonyms import BUILTIN_GROUPS, SynonymExpander, load_groups, save_groups
from kb.text import (
    BODY_MARK,
    MAX_QUERY_TERMS,
    QUESTIONS_MARK,
    TITLE_MARK,
    MixedTokenizer,
    WordTokenizer,
    clean_query,
    clean_text,
    has_cjk,
    terms,
    words,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 3  # 3: term vectors on `text`, for statistics without deleted documents
# Titles and alternate questions say what an article is about; the body mostly explains.
FIELD_BOOSTS: dict[str, float] = {TITLE_MARK: 2.5, QUESTIONS_MARK: 1.5, BODY_MARK: 0.5}
K1, B = 1.2, 0.75
OPTIMIZE_MIN_DELETED = 200
# BM25 candidates handed to fusion; the semantic stage brings its own.
CANDIDATES = 30
SEARCHER_CHECK_S = 1.0  # how often a thread looks for commits made by other processes
PROGRESS_EVERY = 100


class _BM25F(BM25F):
    """BM25F whose statistics count only the articles indexed now.

    Whoosh keeps deleted documents (replaced or removed articles) in its document
    frequencies and averages until their segment is rewritten, so scores would depend on the
    history of edits; optimising after every edit rewrites the whole index (tens of seconds
    at 10k articles). Instead the idf subtracts the terms of the deleted documents (read from
    their term vectors, few between merges) and the average length is taken over the live
    documents' stored (one-byte) lengths: incremental updates and a rebuild rank identically.
    """

    def __init__(self, avgfl: float, live_docs: int, dead_terms: Counter[str]) -> None:
        super().__init__(B=B, K1=K1)
        self.avgfl = avgfl or 1.0
        self.live_docs = live_docs
        self.dead_terms = dead_terms

    def idf(self, searcher: Any, fieldname: str, text: bytes | str) -> float:
        if fieldname != "text":
            return float(super().idf(searcher, fieldname, text))
        term = text.decode("utf-8") if isinstance(text, bytes) else text
        n = searcher.get_parent().doc_frequency(fieldname, text) - self.dead_terms[term]
        return math.log(max(self.live_docs, 1) / (n + 1)) + 1

    def scorer(self, searcher: Any, fieldname: str, text: bytes, qf: int = 1) -> Any:
        scorer = BM25FScorer(searcher, fieldname, text, self.B, self.K1, qf=qf)
        scorer.avgfl = self.avgfl
        return scorer


class VectorStage(Protocol):
    """What the index needs of `kb.semantic.VectorIndex`."""

    def set_articles(self, items: Sequence[tuple[str, Sequence[str]]]) -> None: ...
    def remove(self, ids: Sequence[str]) -> None: ...
    def replace_all(self, items: Sequence[tuple[str, Sequence[str]]]) -> None: ...
    def scores(self, query: str, limit: int) -> list[tuple[str, float]]: ...


def _schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        language=ID(stored=True),
        text=TEXT(
            analyzer=CompositeAnalyzer(MixedTokenizer(FIELD_BOOSTS)), phrase=False, vector=True
        ),
        # Unstemmed words of titles and questions: the vocabulary spelling suggestions use.
        spell=TEXT(analyzer=CompositeAnalyzer(WordTokenizer()), phrase=False),
        title=STORED(),
        data=STORED(),
    )


def semantic_texts(article: KbArticle) -> list[str]:
    """What the semantic stage embeds for an article: how it is asked, not the answer."""
    return [article.title, *article.questions]


def _document(article: KbArticle) -> dict[str, Any]:
    questions = "\n".join(article.questions)
    return {
        "id": article.id,
        "language": article.language,
        "text": (
            f"{TITLE_MARK}{clean_text(article.title)}{QUESTIONS_MARK}{clean_text(questions)}"
            f"{BODY_MARK}{clean_text(article.body)}"
        ),
        "spell": f"{article.title}\n{questions}",
        "title": article.title,
        "data": json.dumps(
            {
                "questions": list(article.questions),
                "body": article.body,
                "short_answer": article.short_answer,
            },
            ensure_ascii=False,
        ),
    }


class WhooshKnowledgeIndex:
    """`hub.ports.KnowledgeIndex` over a Whoosh index directory.

    One writer at a time inside the process (a lock) and across processes (Whoosh's own
    lock file); every searching thread keeps its own searcher (Whoosh searchers are not
    shareable between threads) and replaces it after a commit.
    """

    def __init__(self, directory: Path, vectors: VectorStage | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        meta = directory / "omnihub-kb.json"
        fresh = not index.exists_in(str(directory))
        if not fresh:
            version = json.loads(meta.read_text()).get("schema") if meta.exists() else None
            fresh = version != SCHEMA_VERSION
            if fresh:
                log.warning("kb index at %s has an old schema; it starts empty", directory)
        if fresh:
            self._ix = index.create_in(str(directory), _schema())
            meta.write_text(json.dumps({"schema": SCHEMA_VERSION}))
            if vectors is not None:
                vectors.replace_all([])  # vectors of a lost index would return ghosts
        else:
            self._ix = index.open_dir(str(directory))
        self._vectors = vectors
        self._write_lock = threading.Lock()
        self._generation = 0
        self._local = threading.local()
        self._open_searchers: list[Any] = []
        self._searchers_lock = threading.Lock()
        self._synonyms = SynonymExpander([*BUILTIN_GROUPS, *load_groups(directory)])

    @property
    def semantic(self) -> bool:
        """Whether a semantic stage is fused into the ranking."""
        return self._vectors is not None

    # --- reading -------------------------------------------------------------------------

    def _searcher(self) -> Any:
        local = self._local
        searcher: Any = getattr(local, "searcher", None)
        now = time.monotonic()
        stale = searcher is None or local.generation != self._generation
        if not stale and now - local.checked > SEARCHER_CHECK_S:
            local.checked = now
            stale = not searcher.up_to_date()
        if stale:
            generation = self._generation
            new = self._open_searcher()
            with self._searchers_lock:
                if searcher is not None:
                    self._open_searchers.remove(searcher)
                self._open_searchers.append(new)
            if searcher is not None:
                searcher.close()
            local.searcher, local.generation, local.checked = new, generation, now
            searcher = new
        return searcher

    def _open_searcher(self) -> Any:
        reader = self._ix.reader()
        lengths: list[int] = []
        dead: Counter[str] = Counter()
        for n in range(reader.doc_count_all()):
            if reader.is_deleted(n):
                dead.update(term for term, _ in reader.vector_as("frequency", n, "text"))
            else:
                lengths.append(reader.doc_field_length(n, "text", 0))
        avgfl = sum(lengths) / len(lengths) if lengths else 1.0
        weighting = _BM25F(avgfl, len(lengths), dead)
        return Searcher(reader, weighting=weighting, fromindex=self._ix)

    def article_ids(self) -> set[str]:
        """Ids of every indexed article."""
        searcher = self._searcher()
        return {fields["id"] for fields in searcher.all_stored_fields()}

    def _query_weights(self, text: str) -> dict[str, float]:
        weights = dict.fromkeys(list(dict.fromkeys(terms(text)))[:MAX_QUERY_TERMS], 1.0)
        for term, weight in self._synonyms.expand(list(weights)).items():
            weights.setdefault(term, weight)
        return weights

    @staticmethod
    def _whoosh_query(weights: dict[str, float]) -> Query:
        return Or([Term("text", term, boost=weight) for term, weight in weights.items()])

    def search(self, query: str, language: str | None = None, limit: int = 10) -> KbResult:
        """Ranked hits for a customer question; ValueError when the query has no text."""
        text = clean_query(query)
        limit = max(1, min(limit, 100))
        weights = self._query_weights(text)
        searcher = self._searcher()
        bm25: list[tuple[str, float]] = []
        stored: dict[str, dict[str, Any]] = {}
        if weights:
            filter_q = Term("language", language) if language else None
            results = searcher.search(
                self._whoosh_query(weights), limit=max(limit, CANDIDATES), filter=filter_q
            )
            for hit in results:
                fields = hit.fields()
                stored[fields["id"]] = fields
                bm25.append((fields["id"], float(hit.score)))
        vector: list[tuple[str, float]] = []
        if self._vectors is not None:
            vector = self._vectors.scores(text, max(limit, CANDIDATES))
        ranked = fusion.fuse(bm25, vector, self._bm25_ceiling(weights))
        hits: list[KbHit] = []
        for article_id, score in ranked:
            fields = stored.get(article_id) or searcher.document(id=article_id)
            if fields is None or (language and fields["language"] != language):
                continue  # the vector store may briefly know an article the index dropped
            data = json.loads(fields["data"])
            snippet = highlight([*data["questions"], data["body"]], weights)
            hits.append(
                KbHit(
                    article_id=article_id,
                    title=fields["title"],
                    language=fields["language"],
                    score=score,
                    highlight=snippet,
                    short_answer=data["short_answer"],
                )
            )
            if len(hits) >= limit:
                break
        confident = bool(hits) and fusion.confident(hits[0].score, bool(vector), has_cjk(text))
        answer = hits[0] if confident else None
        suggestion = None if hits else self._suggest(text, searcher)
        return KbResult(query=text, hits=hits, answer=answer, suggestion=suggestion)

    def _bm25_ceiling(self, weights: dict[str, float]) -> float:
        """A query-specific upper bound of its BM25 score, so scores compare across queries."""
        searcher = self._searcher()
        if not weights or searcher.doc_count() == 0:
            return 1.0  # Whoosh's idf is log(0) on an empty index; nothing can match anyway
        return sum(w * searcher.idf("text", t) for t, w in weights.items()) * (K1 + 1) or 1.0

    def _suggest(self, text: str, searcher: Any) -> str | None:
        corrector = searcher.corrector("spell")
        changed = False
        out = text
        for word in dict.fromkeys(words(text)):
            if searcher.doc_frequency("spell", word):
                continue
            found = corrector.suggest(word, limit=1, maxdist=2, prefix=1)
            if found and found[0] != word:
                out = _replace_word(out, word, found[0])
                changed = True
        return out if changed else None

    # --- writing -------------------------------------------------------------------------

    def _writer(self) -> Any:
        # Whoosh's lock file serialises writers of other processes; wait rather than fail.
        return self._ix.writer(timeout=60.0, limitmb=128)

    def _commit(self, writer: Any, deleted: bool = False, **kwargs: Any) -> None:
        # Scores do not depend on deleted documents (see _BM25F), but each one costs a little
        # at every searcher opening: rewrite the index once they are a fair share of it.
        reader = writer.reader()
        dead = reader.doc_count_all() - reader.doc_count()
        optimize = deleted and dead > max(OPTIMIZE_MIN_DELETED, reader.doc_count_all() // 5)
        writer.commit(optimize=optimize, **kwargs)
        self._generation += 1

    def upsert(self, articles: Sequence[KbArticle]) -> None:
        """Add or replace articles (by id)."""
        if not articles:
            return
        with self._write_lock:
            searcher = self._searcher()
            replaces = any(searcher.document_number(id=a.id) is not None for a in articles)
            writer = self._writer()
            for article in articles:
                writer.update_document(**_document(article))
            self._commit(writer, deleted=replaces)
            if self._vectors is not None:
                self._vectors.set_articles([(a.id, semantic_texts(a)) for a in articles])

    def remove(self, article_ids: Sequence[str]) -> None:
        """Drop articles by id (unknown ids are ignored)."""
        if not article_ids:
            return
        with self._write_lock:
            writer = self._writer()
            for article_id in article_ids:
                writer.delete_by_term("id", article_id)
            self._commit(writer, deleted=True)
            if self._vectors is not None:
                self._vectors.remove(list(article_ids))

    def rebuild(
        self, articles: Sequence[KbArticle], progress: Callable[[int], None] | None = None
    ) -> None:
        """Replace the whole index with `articles`; searches see the old one until commit."""
        with self._write_lock:
            writer = self._writer()
            for n, article in enumerate(articles, 1):
                writer.add_document(**_document(article))
                if progress is not None and n % PROGRESS_EVERY == 0:
                    progress(n)
            self._commit(writer, mergetype=writing.CLEAR)
            if self._vectors is not None:
                self._vectors.replace_all([(a.id, semantic_texts(a)) for a in articles])
            if progress is not None and len(articles) % PROGRESS_EVERY:
                progress(len(articles))

    def set_synonyms(self, groups: Sequence[Sequence[str]]) -> None:
        """Replace the editor-maintained synonym groups (stored beside the index)."""
        with self._write_lock:
            stored = save_groups(self.directory, groups)
            self._synonyms = SynonymExpander([*BUILTIN_GROUPS, *stored])

    def synonyms(self) -> list[list[str]]:
        """The editor-maintained groups as stored (built-in groups not included)."""
        return load_groups(self.directory)

    def group_similar(self, texts: Sequence[str]) -> list[list[int]]:
        """Cluster questions for the content-gap report, largest group first."""
        encoder = getattr(self._vectors, "encoder", None)
        return group_similar(texts, encoder)

    def close(self) -> None:
        """Close every searcher; the index must not be used afterwards."""
        with self._searchers_lock:
            for searcher in self._open_searchers:
                searcher.close()
            self._open_searchers.clear()
        self._ix.close()


def _replace_word(text: str, word: str, replacement: str) -> str:
    return re.sub(rf"(?i)\b{re.escape(word)}\b", replacement, text, count=0)
