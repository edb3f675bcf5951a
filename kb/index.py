"""The Whoosh-backed `KnowledgeIndex`: BM25F over title, alternate questions and body, with
an optional semantic stage fused in (see `kb.fusion`)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from whoosh import index, writing
from whoosh.fields import ID, STORED, Schema
from whoosh.searching import Searcher

from hub.ports import KbArticle, KbHit, KbResult
from kb import fusion, parallel
from kb import writing as writing_
from kb.grouping import group_similar
from kb.highlight import highlight
from kb.query import PLACEHOLDER_TERMS
from kb.query import views as query_views
from kb.scoring import K1, LiveBM25
from kb.synonyms import BUILTIN_GROUPS, SynonymExpander, load_groups, save_groups
from kb.text import (
    BODY_MARK,
    MAX_QUERY_TERMS,
    QUESTIONS_MARK,
    TITLE_MARK,
    CountedText,
    MixedTokenizer,
    WordTokenizer,
    clean_query,
    clean_text,
    has_cjk,
    terms,
    words,
)

log = logging.getLogger(__name__)

# 4: term vectors replaced by a stored list of each document's distinct terms (kb.scoring)
# 5: Chinese terms folded from Traditional to Simplified (kb.text.fold_chinese)
# 6: Chinese single characters indexed at half weight (kb.text.UNIGRAM_WEIGHT)
SCHEMA_VERSION = 6
# Titles and alternate questions say what an article is about; the body mostly explains.
FIELD_BOOSTS: dict[str, float] = {TITLE_MARK: 2.5, QUESTIONS_MARK: 1.5, BODY_MARK: 0.5}
# Deleted documents cost a little at every searcher opening (their terms are subtracted from
# the statistics): merge them away once they are this many and a fifth of the index.
OPTIMIZE_MIN_DELETED = 200
# BM25 candidates handed to fusion; the semantic stage brings its own.
CANDIDATES = 30
SEARCHER_CHECK_S = 1.0  # how often a thread looks for commits made by other processes
PROGRESS_EVERY = 100
# Whoosh's writer buffers postings up to this (by its own estimate) before spilling sorted
# runs to temporary files, merged again at commit: 10k articles estimate ~300 MB, and the
# spilling at the old 128 MB doubled the commit. Peak memory of a 10k rebuild: ~0.5 GB.
WRITER_LIMIT_MB = 512


@dataclass(slots=True)
class _Reading:
    """One thread's view of the index: a Whoosh searcher and the BM25F state over it."""

    searcher: Any
    bm25: LiveBM25
    generation: int
    checked: float


class VectorStage(Protocol):
    """What the index needs of its semantic stage (`kb.multilingual.RoutedStage`)."""

    def set_articles(self, articles: Sequence[KbArticle]) -> None: ...
    def remove(self, ids: Sequence[str]) -> None: ...
    def replace_all(self, articles: Sequence[KbArticle]) -> None: ...
    def scores(self, query: str, limit: int) -> list[tuple[str, float]]: ...
    def encoder_for(self, texts: Sequence[str]) -> Any: ...


def _schema() -> Schema:
    return Schema(
        id=ID(stored=True, unique=True),
        language=ID(stored=True),
        text=CountedText(MixedTokenizer(FIELD_BOOSTS)),
        # Unstemmed words of titles and questions: the vocabulary spelling suggestions use.
        spell=CountedText(WordTokenizer(), scorable=False),
        terms=STORED(),
        title=STORED(),
        data=STORED(),
    )


def _document(article: KbArticle, tokenizer: MixedTokenizer) -> dict[str, Any]:
    questions = "\n".join(article.questions)
    text = (
        f"{TITLE_MARK}{clean_text(article.title)}{QUESTIONS_MARK}{clean_text(questions)}"
        f"{BODY_MARK}{clean_text(article.body)}"
    )
    return {
        "id": article.id,
        "language": article.language,
        "text": text,
        "terms": " ".join(tokenizer.counts(text)),
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

    def __init__(
        self,
        directory: Path,
        vectors: VectorStage | None = None,
        *,
        optimize_min_deleted: int = OPTIMIZE_MIN_DELETED,
        parallel_min_share: int = parallel.MIN_SHARE,
    ) -> None:
        self.directory = directory
        self.optimize_min_deleted = optimize_min_deleted
        self.parallel_min_share = parallel_min_share
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
        self._tokenizer: MixedTokenizer = self._ix.schema["text"].tokenizer
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

    def _reading(self) -> _Reading:
        """This thread's searcher and BM25F state, reopened after any commit."""
        local = self._local
        reading: _Reading | None = getattr(local, "reading", None)
        now = time.monotonic()
        stale = reading is None or reading.generation != self._generation
        if reading is not None and not stale and now - reading.checked > SEARCHER_CHECK_S:
            reading.checked = now
            stale = not reading.searcher.up_to_date()
        if reading is None or stale:
            generation = self._generation
            searcher = Searcher(self._ix.reader(), fromindex=self._ix)
            fresh = _Reading(searcher, LiveBM25(searcher.reader()), generation, now)
            with self._searchers_lock:
                if reading is not None:
                    self._open_searchers.remove(reading.searcher)
                self._open_searchers.append(searcher)
            if reading is not None:
                reading.searcher.close()
            local.reading = reading = fresh
        return reading

    def _searcher(self) -> Any:
        return self._reading().searcher

    def article_ids(self) -> set[str]:
        """Ids of every indexed article."""
        searcher = self._searcher()
        return {fields["id"] for fields in searcher.all_stored_fields()}

    def _query_weights(self, text: str) -> dict[str, float]:
        weights = dict.fromkeys(list(dict.fromkeys(terms(text)))[:MAX_QUERY_TERMS], 1.0)
        for term, weight in self._synonyms.expand(list(weights)).items():
            weights.setdefault(term, weight)
        return weights

    def search(self, query: str, language: str | None = None, limit: int = 10) -> KbResult:
        """Ranked hits for a customer question; ValueError when the query has no text.

        Several views of the question are scored (kb.query). The message as written ranks
        the hits; when its top hit is not good enough to answer with, its question sentences
        rank them too (each article keeping its best score). The other views (the question
        sentences, the cores without the words the index does not know) then confirm: when
        their best article is the top hit, its score is raised to theirs, counted at the
        view's share. A question sentence does not overrule a message that answers itself
        (alone it can miss what the sentence before it said); a core never reorders. Cores
        are not used without the semantic stage (BM25 alone would score just the known
        words, and out-of-scope questions with them).
        """
        text = clean_query(query)
        limit = max(1, min(limit, 100))
        reading = self._reading()
        searcher = reading.searcher
        known = self._known(reading.bm25) if self._vectors is not None else None
        best: dict[str, float] = {}  # the message as written
        asked: dict[str, float] = {}  # its question sentences, each article's best
        cores: dict[str, float] = {}  # its cores, at their share
        stored: dict[str, dict[str, Any]] = {}
        weights: dict[str, float] = {}
        semantic = False
        for view, share in query_views(text, known):
            view_weights = self._query_weights(view)
            if share == 1.0:
                for term, weight in view_weights.items():
                    weights.setdefault(term, weight)
            else:  # a core: its placeholder is for the encoder, not a word to match
                for term in PLACEHOLDER_TERMS:
                    view_weights.pop(term, None)
            bm25: list[tuple[str, float]] = []
            for docnum, score in reading.bm25.top(view_weights, max(limit, CANDIDATES), language):
                fields = searcher.stored_fields(docnum)
                stored[fields["id"]] = fields
                bm25.append((fields["id"], score))
            vector: list[tuple[str, float]] = []
            if self._vectors is not None:
                vector = self._vectors.scores(view, max(limit, CANDIDATES))
                semantic = semantic or bool(vector)
            if share != 1.0 and not vector:
                continue  # the encoder could not read the core: it confirms nothing
            # The ceiling counts the customer's own terms only: an article matches one member
            # of a synonym group, so counting every member's terms lowered exactly the
            # questions the synonyms were added for (快件到哪了 under 快递's 0.33 -> 0.29).
            typed = set(terms(view))
            ceiling = self._bm25_ceiling(
                {t: w for t, w in view_weights.items() if t in typed}, reading.bm25
            )
            scores = best if view == text else asked if share == 1.0 else cores
            for article_id, score in fusion.fuse(bm25, vector, ceiling):
                if score * share > scores.get(article_id, -1.0):
                    scores[article_id] = score * share
        chinese = has_cjk(text)
        ranked = _ranked(best)
        if asked and not (ranked and fusion.confident(ranked[0][1], semantic, chinese)):
            ranked = _ranked(_best_of(best, asked))
        ranked = self._confirmed(ranked, _best_of(asked, cores), stored, searcher, language)
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
        confident = bool(hits) and fusion.confident(hits[0].score, semantic, chinese)
        answer = hits[0] if confident else None
        suggestion = None if hits else self._suggest(text, searcher)
        return KbResult(
            query=text, hits=hits, answer=answer, suggestion=suggestion, semantic=semantic
        )

    @staticmethod
    def _confirmed(
        ranked: list[tuple[str, float]],
        others: dict[str, float],
        stored: dict[str, dict[str, Any]],
        searcher: Any,
        language: str | None,
    ) -> list[tuple[str, float]]:
        """`ranked` with the top hit's score raised to the other views' when they rank it
        first too (among the articles of `language`)."""

        def eligible(article_id: str) -> bool:
            if not language:
                return True
            fields = stored.get(article_id) or searcher.document(id=article_id)
            return fields is not None and fields["language"] == language

        top = next((i for i, (a, _) in enumerate(ranked) if eligible(a)), None)
        if top is None or not others:
            return ranked
        candidates = [a for a in others if eligible(a)]
        their_best = min(candidates, key=lambda a: (-others[a], a), default=None)
        article_id, score = ranked[top]
        if their_best == article_id and others[article_id] > score:
            ranked = list(ranked)
            ranked[top] = (article_id, others[article_id])
        return ranked

    def _known(self, bm25: LiveBM25) -> Callable[[str], bool]:
        """Whether the index knows a query term, itself or through a synonym."""

        def known(term: str) -> bool:
            if bm25.doc_frequency(term) > 0:
                return True
            return any(bm25.doc_frequency(t) > 0 for t in self._synonyms.expand([term]))

        return known

    @staticmethod
    def _bm25_ceiling(weights: dict[str, float], bm25: LiveBM25) -> float:
        """A query-specific upper bound of its BM25 score, so scores compare across queries.

        Terms no article has count too: leaving them out lifted questions that name unknown
        things in and out of scope alike (CLINC150 BM25-only out-of-scope recall 0.78 ->
        0.38); the core view (kb.query) handles those names instead.
        """
        if not weights or bm25.live_docs == 0:
            return 1.0  # nothing can match anyway
        return sum(w * bm25.idf(t) for t, w in weights.items()) * (K1 + 1) or 1.0

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
        return writing_.writer(self._ix, timeout=60.0, limitmb=WRITER_LIMIT_MB)

    def _commit(self, writer: Any, **kwargs: Any) -> None:
        writer.commit(**kwargs)
        self._generation += 1

    def _add(self, writer: Any, article: KbArticle, replace: bool) -> None:
        fields = _document(article, self._tokenizer)
        if replace:
            writer.update_document(**fields)
        else:
            writer.add_document(**fields)

    def upsert(self, articles: Sequence[KbArticle]) -> None:
        """Add or replace articles (by id)."""
        if not articles:
            return
        with self._write_lock:
            writer = self._writer()
            for article in articles:
                self._add(writer, article, replace=True)
            self._commit(writer)
            if self._vectors is not None:
                self._vectors.set_articles(articles)

    def remove(self, article_ids: Sequence[str]) -> None:
        """Drop articles by id (unknown ids are ignored)."""
        if not article_ids:
            return
        with self._write_lock:
            writer = self._writer()
            for article_id in article_ids:
                writer.delete_by_term("id", article_id)
            self._commit(writer)
            if self._vectors is not None:
                self._vectors.remove(list(article_ids))

    def rebuild(
        self, articles: Sequence[KbArticle], progress: Callable[[int], None] | None = None
    ) -> None:
        """Replace the whole index with `articles`; searches see the old one until commit.

        A large corpus is written by several processes, a segment each (`kb.parallel`), in
        the order given, so documents are numbered as in a one-process build and rank alike.
        """
        with self._write_lock:
            writer = self._writer()
            workers = parallel.worker_count(len(articles), self.parallel_min_share)
            if workers > 1:
                size = -(-len(articles) // workers)
                shares = [articles[i : i + size] for i in range(0, len(articles), size)]
                try:
                    segments = parallel.build_segments(
                        str(self.directory), shares, _document, WRITER_LIMIT_MB, progress
                    )
                except BaseException:
                    writer.cancel()
                    raise
                parallel.commit_segments(writer, segments)
                self._generation += 1
            else:
                for n, article in enumerate(articles, 1):
                    self._add(writer, article, replace=False)
                    if progress is not None and n % PROGRESS_EVERY == 0:
                        progress(n)
                self._commit(writer, mergetype=writing.CLEAR)
                if progress is not None and len(articles) % PROGRESS_EVERY:
                    progress(len(articles))
            if self._vectors is not None:
                self._vectors.replace_all(articles)

    def deleted_count(self) -> int:
        """Documents replaced or removed but still in the index files (until `optimize`)."""
        reader = self._ix.reader()
        try:
            return int(reader.doc_count_all() - reader.doc_count())
        finally:
            reader.close()

    def needs_optimize(self) -> bool:
        """Whether deleted documents are many enough that `optimize` is worth its cost."""
        reader = self._ix.reader()
        try:
            total = reader.doc_count_all()
            dead = total - reader.doc_count()
        finally:
            reader.close()
        return bool(dead > max(self.optimize_min_deleted, total // 5))

    def optimize(self) -> None:
        """Rewrite the index into one segment without deleted documents.

        Slow (the whole index is rewritten: seconds at 10k articles) and blocking other
        writers meanwhile, so callers run it in the background, never inside an edit; results
        do not change (deleted documents never count, see `kb.scoring`).
        """
        with self._write_lock:
            self._commit(self._writer(), optimize=True)

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
        encoder = self._vectors.encoder_for(texts) if self._vectors is not None else None
        return group_similar(texts, encoder)

    def close(self) -> None:
        """Close every searcher; the index must not be used afterwards."""
        with self._searchers_lock:
            for searcher in self._open_searchers:
                searcher.close()
            self._open_searchers.clear()
        self._ix.close()


def _ranked(scores: dict[str, float]) -> list[tuple[str, float]]:
    """(article_id, score) best first; ties broken by id so results are reproducible."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def _best_of(*views: dict[str, float]) -> dict[str, float]:
    """Each article's best score over several views."""
    found: dict[str, float] = {}
    for scores in views:
        for article_id, score in scores.items():
            found[article_id] = max(found.get(article_id, -1.0), score)
    return found


def _replace_word(text: str, word: str, replacement: str) -> str:
    return re.sub(rf"(?i)\b{re.escape(word)}\b", replacement, text, count=0)
