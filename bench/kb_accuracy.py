"""Knowledge-base retrieval accuracy on a labelled query set.

    .venv/bin/python bench/kb_accuracy.py --articles ../shared/eval/banking77/articles.jsonl \
        --queries ../shared/eval/banking77/queries-dev.jsonl [--semantic | --no-semantic] \
        [--multilingual auto|e5|use|off]

Method: the articles (JSON Lines `{"id","title","body","questions","language","tags",
"short_answer"?}`) are imported, published, into a fresh knowledge base (SQLite database and
index in a temporary directory) through the public import path (`omnihub kb import`'s
`kb_io.import_articles`); every query (`{"text","expected"}`, `expected` null when it must
be escalated) goes once, timed, through the search the bot uses
(`ArticleService.search(text, None, 10, source=bot)`, which also records the question).

Figures, over the queries with an expected article: hit@1, hit@3, MRR (reciprocal rank of
the expected article within the 10 hits, 0 when absent), and in-scope accuracy (the answer
is the expected article). Over the `expected: null` queries: out-of-scope recall (no answer
given, i.e. escalated). Latency p50/p95 per search, nearest rank. Several `--queries` files
are read as one set. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import add_kb_arguments, percentile

from hub.cli import open_knowledge_base
from hub.config import load_settings
from hub.model import KbSource
from hub.services import kb_io


def load_queries(paths: Sequence[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        rows.extend(json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x)
    return rows


async def run(
    articles_path: Path, query_paths: Sequence[Path], semantic: bool, multilingual: str = "auto"
) -> dict[str, Any]:
    """Measure one article/query set; returns the figures (see the module docstring)."""
    queries = load_queries(query_paths)
    latencies: list[float] = []
    hit1 = hit3 = 0
    rr = 0.0
    in_scope = answered_right = oos = oos_escalated = 0
    with tempfile.TemporaryDirectory(prefix="kb-accuracy-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp), kb_semantic=semantic, kb_multilingual=multilingual, demo=False
        )
        async with open_knowledge_base(settings) as service:
            started = time.perf_counter()
            report = await kb_io.import_articles(service, articles_path, "jsonl", publish=True)
            build_s = time.perf_counter() - started
            if not report.ok:
                raise SystemExit("\n".join(report.errors))
            # first-search costs (jieba dictionary, searcher) are not timed
            await service.search("warm up", None, 10, KbSource.BOT)
            for row in queries:
                t0 = time.perf_counter()
                result = await service.search(row["text"], None, 10, KbSource.BOT)
                latencies.append((time.perf_counter() - t0) * 1000)
                expected = row["expected"]
                ids = [h.article_id for h in result.hits]
                if expected is None:
                    oos += 1
                    oos_escalated += result.answer is None
                    continue
                in_scope += 1
                hit1 += ids[:1] == [expected]
                hit3 += expected in ids[:3]
                if expected in ids:
                    rr += 1 / (ids.index(expected) + 1)
                answered_right += result.answer is not None and result.answer.article_id == expected
    latencies.sort()
    figures: dict[str, Any] = {
        "bench": "kb_accuracy",
        "articles": str(articles_path),
        "queries": len(queries),
        "semantic": semantic,
        "multilingual": multilingual,
        "hit1": round(hit1 / in_scope, 4) if in_scope else None,
        "hit3": round(hit3 / in_scope, 4) if in_scope else None,
        "mrr": round(rr / in_scope, 4) if in_scope else None,
        "in_scope_accuracy": round(answered_right / in_scope, 4) if in_scope else None,
        "p50_ms": round(percentile(latencies, 50) or 0.0, 2),
        "p95_ms": round(percentile(latencies, 95) or 0.0, 2),
        "build_s": round(build_s, 2),
    }
    if oos:
        figures["oos_recall"] = round(oos_escalated / oos, 4)
        figures["oos_queries"] = oos
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_kb_arguments(parser)
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.articles, args.queries, args.semantic, args.multilingual))
    print(f"articles        {args.articles}")
    print(f"queries         {figures['queries']}  (semantic: {figures['semantic']})")
    for key in ("hit1", "hit3", "mrr", "in_scope_accuracy", "oos_recall", "p50_ms", "p95_ms"):
        if key in figures:
            print(f"{key:<16}{figures[key]}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
