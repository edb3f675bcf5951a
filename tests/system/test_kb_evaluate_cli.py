"""`omnihub kb evaluate` and `omnihub kb calibrate` as real subprocesses on a SQLite data
directory with a few articles and a small question file (BM25 only, to keep them fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.system.test_cli import described, settings

ROOT = Path(__file__).resolve().parents[2]

ARTICLES = [
    {"id": "refund", "title": "When do I get my refund?", "body": "Within 5 days.",
     "questions": ["where is my money back", "refund status"], "language": "en",
     "status": "published"},
    {"id": "track", "title": "Where is my parcel?", "body": "Use the tracking link.",
     "questions": ["track my order"], "language": "en", "status": "published"},
    {"id": "zh-refund", "title": "退款什么时候到账？", "body": "五个工作日内退回。",
     "questions": ["钱什么时候退回来"], "language": "zh", "status": "published"},
    {"id": "zh-track", "title": "如何查询快递物流？", "body": "在订单详情里查看物流。",
     "questions": ["包裹到哪了"], "language": "zh", "status": "published"},
]

QUESTIONS = [
    {"text": "refund status please", "expected": "refund"},
    {"text": "track my parcel", "expected": "track"},
    {"text": "can I refund with bitcoin", "expected": None},
    {"text": "我的退款什么时候到", "expected": "zh-refund"},
    {"text": "快递到哪了", "expected": "zh-track", "language": "zh-CN"},
    {"text": "快递员招聘吗", "expected": None},
]


def run(tmp_path: Path, *args: str, **more: str) -> subprocess.CompletedProcess[str]:
    """This checkout's `omnihub` (python -m hub), on the test's data directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env = {**clean, **settings(tmp_path / "data", OMNIHUB_KB_SEMANTIC="false", **more),
           "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-m", "hub", *args], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=120, check=False)
    assert "Traceback" not in result.stderr, described(result)
    return result


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def row(stdout: str, name: str) -> list[str]:
    return next(line.split() for line in stdout.splitlines() if line.split()[:1] == [name])


def test_evaluate_and_calibrate_a_small_file(tmp_path: Path) -> None:
    imported = run(tmp_path, "kb", "import", str(write_jsonl(tmp_path / "a.jsonl", ARTICLES)))
    assert imported.returncode == 0, described(imported)
    questions = write_jsonl(tmp_path / "q.jsonl", QUESTIONS)

    result = run(tmp_path, "kb", "evaluate", str(questions))
    assert result.returncode == 0, described(result)
    header = row(result.stdout, "language")
    assert header[-2:] == ["OOS", "recall"] and "hit@1" in header and "MRR" in header
    en, zh, zh_cn, everything = (row(result.stdout, n) for n in ("en", "zh", "zh-CN", "all"))
    assert en[1:3] == ["2", "1"] and zh[1:3] == ["1", "1"] and zh_cn[1:3] == ["1", "0"]
    assert everything[1:3] == ["4", "2"]
    assert everything[4] == "1.000"  # hit@1: every in-scope question finds its article first

    # The English answers are made to fail the targets, so calibration has work to do.
    strict = run(tmp_path, "kb", "calibrate", str(questions), "--target-precision", "0.9",
                 OMNIHUB_BOT_ANSWER_THRESHOLDS='{"en.bm25": 0.0}')
    assert strict.returncode == 0, described(strict)
    assert row(strict.stdout, "en.bm25")[3] == "0.0000"  # what is configured now
    assert row(strict.stdout, "zh.bm25")[3] == "index"
    assert "targets met" in strict.stdout
    toml = next(line.strip() for line in strict.stdout.splitlines()
                if line.strip().startswith("bot_answer_thresholds = "))
    env = next(line.strip() for line in strict.stdout.splitlines()
               if line.strip().startswith("OMNIHUB_BOT_ANSWER_THRESHOLDS="))
    picked = json.loads(env.split("=", 1)[1].strip("'"))
    assert set(picked) == {"en.bm25", "zh.bm25"} and picked["en.bm25"] > 0
    assert f'"en.bm25" = {picked["en.bm25"]}' in toml

    # The printed setting, used: the bot now holds the out-of-scope question back.
    after = run(tmp_path, "kb", "evaluate", str(questions),
                OMNIHUB_BOT_ANSWER_THRESHOLDS=json.dumps(picked))
    assert after.returncode == 0, described(after)
    assert row(after.stdout, "all")[-1] == "1.000"


def test_bad_question_files_are_named_by_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"text": "refund status", "expected": "refund"}\n'
        "not json\n"
        '{"text": "", "expected": null}\n'
        '{"text": "where is it"}\n'
        '["a list"]\n',
        encoding="utf-8",
    )
    result = run(tmp_path, "kb", "evaluate", str(bad))
    assert result.returncode == 1, described(result)
    for line, reason in ((2, "not JSON"), (3, '"text"'), (4, '"expected" is missing'),
                         (5, "expected an object")):
        assert f"{bad}:{line}: {reason}" in result.stderr, described(result)
    assert f"{bad}:1" not in result.stderr

    missing = run(tmp_path, "kb", "calibrate", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr, described(missing)
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes(b'{"text": "ok", "expected": null}\n{"text": "caf\xe9"}\n')
    result = run(tmp_path, "kb", "evaluate", str(binary))
    assert result.returncode == 1 and f"{binary}:2: not UTF-8" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    result = run(tmp_path, "kb", "calibrate", str(empty), "--target-precision", "1.5")
    assert result.returncode == 1 and "--target-precision" in result.stderr, described(result)
    result = run(tmp_path, "kb", "calibrate", str(empty))
    assert result.returncode == 1 and "no questions" in result.stderr, described(result)
