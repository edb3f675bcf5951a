"""Knowledge-base speed: index build and query latency, against SQLite FTS5 on the same data.

    .venv/bin/python bench/kb_speed.py [--articles 10000] [--queries 1000] [--no-semantic] \
        [--zh-articles 1000] [--multilingual auto|e5|use|off]

Corpus (deterministic, `--seed`): `--articles` English articles generated from a fixed
vocabulary of 3,000 made-up words drawn with a Zipf-like distribution plus 300 topic
words; each has a 4–10 word title, 3–10 alternate questions of 5–16 words and a body of
2–5 paragraphs of 3–6 sentences (8–20 words each). Queries: `--queries` questions built
like alternate questions from a random article's topic words and common words, so most
share a few terms with several articles.

Measured, in one run:
* build_s: `rebuild` of the whole corpus into a fresh BM25-only index;
* p50/p95: `search(query, limit=10)` on that index (the BM25 stage: candidates, stored
  fields, snippets), one query at a time after a warm-up pass over 50 of them;
* the same corpus in an SQLite FTS5 table (title, questions, body; porter unicode61), built
  in one transaction, and the same queries as an OR of their words ranked by
  `bm25(kb, 2.5, 1.5, 0.5)` (our field weights) with LIMIT 10;
* ratio = BM25-stage p95 / FTS5 p95; upsert_s: one article replaced in the full index;
* unless `--no-semantic`, with the semantic stage: semantic_build_s, the first rebuild
  (encodes every title and question not in `--vector-cache`: minutes on 2 cores, once per
  corpus), reindex_s, a second rebuild reusing the vectors as `omnihub kb reindex` does, and
  search_p50_ms/search_p95_ms, the whole search (BM25 + query encoding + cosine + fusion);
* with the semantic stage and `--zh-articles` > 0: that many Chinese articles (made-up words
  of common characters, built like the English ones) join the corpus, and `--queries`
  Chinese questions built from their topic words are timed the same way (zh_search_p50_ms,
  zh_search_p95_ms: BM25 over the whole index + the multilingual stage, kb/multilingual.py).
Targets: ratio <= 3, search_p95_ms <= 25, build_s and reindex_s <= 15. Figures only:
nothing is asserted. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import add_multilingual_argument, percentile

from hub.ports import KbArticle
from kb import WhooshKnowledgeIndex, open_index

COMMON = (
    "how do i can my the a to is it card account money pay payment transfer bank app why "
    "what when where not still help please need want get make change new send receive "
    "charge fee limit order statement balance open close cancel check"
).split()
_SYLLABLES = "ka ri to mo sa le un pe di va lo ne ti ro ba mi ze fu go ha".split()


def _vocabulary(rng: random.Random, n: int) -> list[str]:
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def _words_drawer(
    rng: random.Random,
    vocab: list[str],
    common: list[str],
    cum_weights: list[float] | None,
    sep: str,
) -> Callable[[int, list[str], float], str]:
    """`words(k, topic, topical)`: k words, each a topic word (share `topical`), a common one
    (0.35) or one of `vocab` (by `cum_weights`, or uniformly), joined by `sep`."""

    def words(k: int, topic: list[str], topical: float) -> str:
        out = []
        for _ in range(k):
            r = rng.random()
            if r < topical:
                out.append(rng.choice(topic))
            elif r < topical + 0.35:
                out.append(rng.choice(common))
            elif cum_weights is not None:
                out.append(rng.choices(vocab, cum_weights=cum_weights)[0])
            else:
                out.append(rng.choice(vocab))
        return sep.join(out)

    return words


class Corpus:
    """The generated articles and queries (same seed, same corpus)."""

    def __init__(self, n_articles: int, n_queries: int, seed: int) -> None:
        rng = random.Random(seed)
        vocab = _vocabulary(rng, 3000)
        topics = _vocabulary(random.Random(seed + 1), 300)
        # Cumulative weights once: `choices` would re-add 3,000 weights per word drawn (same
        # draws, same corpus).
        cum_weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(vocab))))

        words = _words_drawer(rng, vocab, COMMON, cum_weights, " ")

        self.articles: list[KbArticle] = []
        self.topics: list[list[str]] = []
        for i in range(n_articles):
            topic = rng.sample(topics, 3)
            self.topics.append(topic)
            body = "\n\n".join(
                " ".join(
                    words(rng.randint(8, 20), topic, 0.1).capitalize() + "."
                    for _ in range(rng.randint(3, 6))
                )
                for _ in range(rng.randint(2, 5))
            )
            self.articles.append(
                KbArticle(
                    id=f"gen-{i:05d}",
                    language="en",
                    title=words(rng.randint(4, 10), topic, 0.4).capitalize(),
                    body=body,
                    questions=tuple(
                        words(rng.randint(5, 16), topic, 0.25).capitalize() + "?"
                        for _ in range(rng.randint(3, 10))
                    ),
                )
            )
        self.queries = [
            words(rng.randint(3, 12), self.topics[rng.randrange(n_articles)], 0.3) + "?"
            for _ in range(n_queries)
        ]


# Common characters of customer-service Chinese; made-up two- and three-character words of them
# stand in for a vocabulary (jieba cuts them into known words, single characters and bigrams).
_HANZI = (
    "银行卡信用借记账户转密码手机登录验证短信额度限制还款分期利息费用年费挂失补办冻结解冻"
    "开通取消余额明细流水贷款房车保险理赔保单退保存款定期活期到期理财产品赎回收益网点营业"
    "时间预约柜台客服人工投诉建议地址电话号码身份证件更新境外消费支付失败退回到账延迟"
)
ZH_COMMON = "怎么 如何 为什么 可以 我的 请问 一下 不能 需要 办理 多少 什么 哪里 还是".split()


class ChineseCorpus:
    """Chinese articles and questions made like `Corpus`'s (same seed, same corpus)."""

    def __init__(self, n_articles: int, n_queries: int, seed: int) -> None:
        rng = random.Random(seed + 2)
        vocab: set[str] = set()
        while len(vocab) < 2000:
            vocab.add("".join(rng.choice(_HANZI) for _ in range(rng.randint(2, 3))))
        words_list = sorted(vocab)
        topics_list = words_list[:300]

        words = _words_drawer(rng, words_list, ZH_COMMON, None, "")

        self.articles: list[KbArticle] = []
        topics: list[list[str]] = []
        for i in range(n_articles):
            topic = rng.sample(topics_list, 3)
            topics.append(topic)
            body = "".join(words(rng.randint(6, 14), topic, 0.1) + "。" for _ in range(4))
            self.articles.append(
                KbArticle(
                    id=f"zh-{i:05d}",
                    language="zh",
                    title=words(rng.randint(2, 5), topic, 0.5),
                    body=body,
                    questions=tuple(
                        words(rng.randint(3, 8), topic, 0.3) + "？"
                        for _ in range(rng.randint(3, 8))
                    ),
                )
            )
        self.queries = (
            [
                words(rng.randint(3, 8), topics[rng.randrange(n_articles)], 0.3) + "？"
                for _ in range(n_queries)
            ]
            if n_articles
            else []
        )


def _timed(fn: Any, queries: Sequence[str]) -> list[float]:
    for q in queries[:50]:
        fn(q)
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def bench_fts5(corpus: Corpus, directory: Path) -> tuple[float, list[float]]:
    """Build time and sorted latencies (ms) of the same corpus and queries in FTS5."""
    db = sqlite3.connect(directory / "fts5.db")
    db.execute(
        "CREATE VIRTUAL TABLE kb USING fts5(id UNINDEXED, title, questions, body,"
        " tokenize='porter unicode61')"
    )
    started = time.perf_counter()
    with db:
        db.executemany(
            "INSERT INTO kb VALUES (?, ?, ?, ?)",
            [(a.id, a.title, "\n".join(a.questions), a.body) for a in corpus.articles],
        )
    build_s = time.perf_counter() - started

    def search(query: str) -> list[Any]:
        words = re.findall(r"\w+", query.lower())
        match = " OR ".join(f'"{w}"' for w in words)
        return db.execute(
            "SELECT id, bm25(kb, 0, 2.5, 1.5, 0.5) AS s FROM kb WHERE kb MATCH ?"
            " ORDER BY s LIMIT 10",
            (match,),
        ).fetchall()

    latencies = _timed(search, corpus.queries)
    db.close()
    return build_s, latencies


# The vector caches of the semantic stages (kb/__init__.py), kept between runs.
_VECTOR_FILES = (
    "vectors/vectors.npz",
    "vectors-multilingual/questions/vectors.npz",
    "vectors-multilingual/bodies/vectors.npz",
)


def bench_semantic(
    corpus: Corpus, chinese: ChineseCorpus, directory: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Whole search (BM25 + semantic stage) latency, and a reindex with embeddings cached."""
    figures: dict[str, Any] = {}
    tag = f"{args.articles}-{args.zh_articles}-{args.seed}-{args.multilingual}"
    cache = args.vector_cache / tag
    for name in _VECTOR_FILES:
        if (cache / name).is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache / name, directory / name)
    full = open_index(directory, semantic=True, multilingual=args.multilingual)
    articles = [*corpus.articles, *chinese.articles]
    started = time.perf_counter()
    full.rebuild(articles)
    # The first build of a corpus encodes every title and question (minutes on 2 cores);
    # later builds, like `omnihub kb reindex`, reuse the cached vectors.
    figures["semantic_build_s"] = round(time.perf_counter() - started, 2)
    for name in _VECTOR_FILES:
        if (directory / name).is_file():
            (cache / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(directory / name, cache / name)
    started = time.perf_counter()
    full.rebuild(articles)
    figures["reindex_s"] = round(time.perf_counter() - started, 2)
    lat = _timed(lambda q: full.search(q), corpus.queries)
    figures["search_p50_ms"] = round(percentile(lat, 50) or 0, 2)
    figures["search_p95_ms"] = round(percentile(lat, 95) or 0, 2)
    if chinese.queries:
        lat = _timed(lambda q: full.search(q), chinese.queries)
        figures["zh_search_p50_ms"] = round(percentile(lat, 50) or 0, 2)
        figures["zh_search_p95_ms"] = round(percentile(lat, 95) or 0, 2)
    close = getattr(full, "close", None)
    if close is not None:
        close()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=77)
    parser.add_argument(
        "--semantic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the whole search with the semantic stage (default)",
    )
    parser.add_argument(
        "--vector-cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "omnihub-kb-speed",
        help="keeps the corpus's embeddings between runs (encoding 75k texts takes minutes)",
    )
    parser.add_argument(
        "--zh-articles",
        type=int,
        default=1000,
        help="Chinese articles added for the multilingual stage's timing (0: none)",
    )
    add_multilingual_argument(parser)
    args = parser.parse_args(argv)

    corpus = Corpus(args.articles, args.queries, args.seed)
    chinese = ChineseCorpus(args.zh_articles, args.queries, args.seed)
    figures: dict[str, Any] = {
        "bench": "kb_speed",
        "articles": args.articles,
        "zh_articles": args.zh_articles,
        "multilingual": args.multilingual,
    }
    with tempfile.TemporaryDirectory(prefix="kb-speed-") as tmp:
        root = Path(tmp)
        bm25 = WhooshKnowledgeIndex(root / "bm25")
        started = time.perf_counter()
        bm25.rebuild(corpus.articles)
        figures["build_s"] = round(time.perf_counter() - started, 2)
        lat = _timed(lambda q: bm25.search(q), corpus.queries)
        figures["p50_ms"] = round(percentile(lat, 50) or 0, 2)
        figures["p95_ms"] = round(percentile(lat, 95) or 0, 2)
        started = time.perf_counter()
        bm25.upsert([corpus.articles[len(corpus.articles) // 2]])
        figures["upsert_s"] = round(time.perf_counter() - started, 2)
        bm25.close()

        fts_build, fts_lat = bench_fts5(corpus, root)
        figures["fts5_build_s"] = round(fts_build, 2)
        figures["fts5_p50_ms"] = round(percentile(fts_lat, 50) or 0, 2)
        figures["fts5_p95_ms"] = round(percentile(fts_lat, 95) or 0, 3)
        figures["ratio"] = round(figures["p95_ms"] / max(figures["fts5_p95_ms"], 1e-6), 2)

        if args.semantic:
            figures.update(bench_semantic(corpus, chinese, root / "full", args))

    width = max(len(k) for k in figures)
    for key, value in figures.items():
        if key != "bench":
            print(f"{key:<{width + 2}}{value}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
