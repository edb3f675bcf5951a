"""The bot's answer / clarify / escalate decisions on a labelled query set.

    .venv/bin/python bench/bot_decisions.py --articles ../shared/eval/clinc150/articles.jsonl \
        --queries ../shared/eval/clinc150/queries-dev.jsonl [--clarify-margin 0.02]

The bot's policy is the hub's, from the settings: OMNIHUB_BOT_ANSWER_THRESHOLDS and
OMNIHUB_BOT_CLARIFY_MARGINS (what `omnihub kb calibrate` prints) apply.

Method: the articles are imported, published, into a fresh knowledge base through the same
path as bench/kb_accuracy.py (`kb_io.import_articles` into a temporary SQLite database and
index). Every query (`{"text","expected"}`, `expected` null when it must be escalated) is put
to the bot's real action `action_answer_from_kb` through rasa-sdk's executor, with a fresh
tracker (first turn of a conversation), exactly as the hub runs it; the decision is read from
the `bot_decision` slot the action sets.

Figures: in-scope accuracy = answered with the expected article / in-scope queries (a
clarifying question is not an answer); out-of-scope recall = escalated / out-of-scope queries;
out-of-scope precision = out-of-scope among the escalated; answer precision = right answers
among all answers (to out-of-scope queries too). Also: how often the bot asked
which article was meant, how often the expected article was among those choices
(`in_scope_with_choice` counts those as resolved), and wrong answers. Latency p50/p95 per
decision (search + action), nearest rank. The last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchlib import add_kb_arguments, percentile
from kb_accuracy import load_queries

from bot import DecisionPolicy, FrontLineBot
from hub.api.app import decision_policy
from hub.cli import open_knowledge_base
from hub.config import load_settings
from hub.services import kb_io
from hub.services.bot_runner import ArticleKnowledge


def _call(text: str) -> dict[str, Any]:
    return {
        "next_action": "action_answer_from_kb",
        "sender_id": "bench",
        "tracker": {
            "sender_id": "bench",
            "slots": {"channel": "webchat", "greeted": True},
            "latest_message": {"text": text},
            "events": [],
        },
    }


def _decision(result: dict[str, Any]) -> dict[str, Any]:
    for event in result["events"]:
        if event.get("event") == "slot" and event.get("name") == "bot_decision":
            return dict(event["value"])
    raise AssertionError(f"the action set no decision: {result}")


async def run(
    articles_path: Path,
    query_paths: Sequence[Path],
    semantic: bool,
    margin: float,
    multilingual: str = "auto",
) -> dict[str, Any]:
    queries = load_queries(query_paths)
    latencies: list[float] = []
    in_scope = right = with_choice = wrong = clarified = 0
    oos = oos_escalated = escalated = answered = 0
    with tempfile.TemporaryDirectory(prefix="bot-decisions-") as tmp:
        settings = load_settings(
            data_dir=Path(tmp), kb_semantic=semantic, kb_multilingual=multilingual, demo=False
        )
        async with open_knowledge_base(settings) as service:
            report = await kb_io.import_articles(service, articles_path, "jsonl", publish=True)
            if not report.ok:
                raise SystemExit("\n".join(report.errors))
            # The hub's policy from the settings (OMNIHUB_BOT_ANSWER_THRESHOLDS and
            # OMNIHUB_BOT_CLARIFY_MARGINS apply), with the margin under measurement.
            policy = dataclasses.replace(decision_policy(settings), clarify_margin=margin)
            bot = FrontLineBot(ArticleKnowledge(service, "http://hub.invalid"), policy)
            await bot.run(_call("warm up"))  # first-search costs are not timed
            for row in queries:
                t0 = time.perf_counter()
                decision = _decision(await bot.run(_call(row["text"])))
                latencies.append((time.perf_counter() - t0) * 1000)
                kind, expected = decision["decision"], row["expected"]
                escalated += kind == "escalate"
                answered += kind == "answer"
                if expected is None:
                    oos += 1
                    oos_escalated += kind == "escalate"
                    continue
                in_scope += 1
                if kind == "answer":
                    right += decision["article_id"] == expected
                    wrong += decision["article_id"] != expected
                elif kind == "clarify":
                    clarified += 1
                    with_choice += expected in decision["choices"]
    latencies.sort()

    def ratio(n: int, d: int) -> float | None:
        return round(n / d, 4) if d else None

    return {
        "bench": "bot_decisions",
        "articles": str(articles_path),
        "queries": len(queries),
        "semantic": semantic,
        "multilingual": multilingual,
        "clarify_margin": margin,
        "answer_thresholds": dict(settings.bot_answer_thresholds),
        "clarify_margins": dict(settings.bot_clarify_margins),
        "in_scope_acc": ratio(right, in_scope),
        "in_scope_with_choice": ratio(right + with_choice, in_scope),
        "clarify_rate": ratio(clarified, in_scope),
        "wrong_answer_rate": ratio(wrong, in_scope),
        "oos_recall": ratio(oos_escalated, oos),
        "oos_precision": ratio(oos_escalated, escalated),
        # Of the bot's answers, the right ones (answers to out-of-scope queries are wrong).
        "answer_precision": ratio(right, answered),
        "p50_ms": round(percentile(latencies, 50) or 0.0, 2),
        "p95_ms": round(percentile(latencies, 95) or 0.0, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_kb_arguments(parser)
    parser.add_argument(
        "--clarify-margin",
        type=float,
        default=DecisionPolicy().clarify_margin,
        help="OMNIHUB_BOT_CLARIFY_MARGIN to measure (default: the shipped one)",
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(
        run(args.articles, args.queries, args.semantic, args.clarify_margin, args.multilingual)
    )
    for key, value in figures.items():
        if key != "bench":
            print(f"{key:<22}{value}")
    bench = {k: figures[k] for k in ("in_scope_acc", "oos_recall", "oos_precision", "p95_ms")}
    print(json.dumps({"bench": "bot_decisions", **bench, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
