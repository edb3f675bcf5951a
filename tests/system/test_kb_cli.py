"""`omnihub kb import/export/reindex/search` as real subprocesses on a SQLite data directory.

BM25 only (OMNIHUB_KB_SEMANTIC=false) to keep these fast; the ranking itself is kb's to test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.system.test_cli import described, omnihub, settings

ARTICLES = [
    {
        "id": "returns",
        "title": "How do I return an item?",
        "body": "Send it back within **30 days**.\n\n- print the label\n- post it",
        "questions": ["Can I send something back?", "return policy"],
        "short_answer": "Returns are free within 30 days.",
        "language": "en",
        "tags": ["returns"],
        "status": "published",
    },
    {
        "id": "zh-password",
        "title": "忘记密码怎么办？",
        "body": "在登录页面点击“忘记密码”。",
        "questions": ["怎么重置密码？"],
        "language": "zh",
        "tags": ["账户"],
    },
    {
        "id": "shipping",
        "title": "Shipping times",
        "body": 'Three to five working days, with a comma, and "quotes" | and a bar.',
        "questions": [],
        "language": "en",
        "tags": [],
        "status": "in_review",
    },
]


def env(tmp_path: Path, name: str = "data") -> dict[str, str]:
    return settings(tmp_path / name, OMNIHUB_KB_SEMANTIC="false")


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def kb(tmp_path: Path, *args: str, data: str = "data") -> tuple[int, str, str]:
    result = omnihub(tmp_path, "kb", *args, **env(tmp_path, data))
    assert "Traceback" not in result.stderr, described(result)
    return result.returncode, result.stdout, result.stderr


def exported(tmp_path: Path, data: str) -> list[dict[str, object]]:
    out = tmp_path / f"{data}-check.jsonl"
    code, stdout, _ = kb(tmp_path, "export", str(out), data=data)
    assert code == 0, stdout
    return [json.loads(line) for line in out.read_text().splitlines()]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("kb",), ["import", "export", "reindex", "search"]),
        (
            ("kb", "import"),
            [
                "--format",
                "--publish",
                "jsonl",
                "csv",
                "markdown",
                "Exit status",
                "FILE:LINE",
                "draft",
            ],
        ),
        (("kb", "export"), ["--format", "PATH"]),
        (("kb", "reindex"), ["usage: omnihub kb reindex"]),
        (("kb", "search"), ["--lang", "--limit", "question"]),
    ],
)
def test_kb_help(tmp_path: Path, args: tuple[str, ...], needles: list[str]) -> None:
    result = omnihub(tmp_path, *args, "--help")
    assert result.returncode == 0, described(result)
    text = " ".join(result.stdout.split())
    for needle in needles:
        assert needle in text, f"`omnihub {' '.join(args)} --help` lacks {needle!r}"
    assert not (tmp_path / "var").exists()


def test_import_is_idempotent_and_changed_rows_become_versions(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "faq.jsonl", ARTICLES)
    code, out, err = kb(tmp_path, "import", str(source))
    assert code == 0 and "3 created" in out, (out, err)
    before = exported(tmp_path, "data")
    assert {a["id"]: a["status"] for a in before} == {
        "returns": "published",
        "zh-password": "draft",
        "shipping": "in_review",
    }

    code, out, _ = kb(tmp_path, "import", str(source))
    assert code == 0 and "0 created, 0 updated, 3 unchanged" in out, out
    assert exported(tmp_path, "data") == before

    changed = [dict(ARTICLES[0], body="Send it back within 60 days."), *ARTICLES[1:]]
    code, out, _ = kb(
        tmp_path, "import", str(write_jsonl(tmp_path / "v2.jsonl", changed)), "--publish"
    )
    # returns: new body; zh-password: no status of its own, so --publish publishes it
    assert code == 0 and "2 updated, 1 unchanged" in out, out
    after = {a["id"]: a for a in exported(tmp_path, "data")}
    assert after["returns"]["body"] == "Send it back within 60 days."
    assert after["zh-password"]["status"] == "published"
    assert after["shipping"]["status"] == "in_review"


def test_bad_rows_are_reported_with_line_numbers_and_the_rest_imported(tmp_path: Path) -> None:
    lines = [
        json.dumps(ARTICLES[0]),
        "{not json",
        json.dumps({**ARTICLES[1], "language": "fr"}),
        "",
        json.dumps({**ARTICLES[2], "title": "t" * 201}),
        json.dumps({"title": "No language"}),
        json.dumps({**ARTICLES[0], "title": "Same id again"}),
        json.dumps({**ARTICLES[2], "id": "fine"}),
    ]
    source = tmp_path / "mixed.jsonl"
    source.write_text("\n".join(lines) + "\n")
    code, out, err = kb(tmp_path, "import", str(source))
    assert code == 1, (out, err)
    reported = [line for line in err.splitlines() if line.startswith(str(source))]
    assert [r.split(":")[1] for r in reported] == ["2", "3", "5", "6", "7"], err
    assert "fr" in reported[1] and "200" in reported[2] and "language" in reported[3]
    assert "first at" in reported[4]
    assert "2 created" in out and "5 bad" in out
    assert sorted(str(a["id"]) for a in exported(tmp_path, "data")) == ["fine", "returns"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "markdown"])
def test_export_import_round_trip(tmp_path: Path, fmt: str) -> None:
    code, _, err = kb(tmp_path, "import", str(write_jsonl(tmp_path / "in.jsonl", ARTICLES)))
    assert code == 0, err
    target = tmp_path / {"jsonl": "out.jsonl", "csv": "out.csv", "markdown": "out"}[fmt]
    code, out, _ = kb(tmp_path, "export", str(target))
    assert code == 0 and "exported 3" in out, out
    if fmt == "markdown":
        assert sorted(p.name for p in target.iterdir()) == [
            "returns.md",
            "shipping.md",
            "zh-password.md",
        ]
        assert (target / "returns.md").read_text().startswith("---\n")
    else:
        assert target.is_file()
    # Into a fresh database: the same articles, statuses and content.
    code, out, err = kb(tmp_path, "import", str(target), "--format", fmt, data="fresh")
    assert code == 0 and "3 created" in out, (out, err)
    assert exported(tmp_path, "fresh") == exported(tmp_path, "data")
    # And back again into the first: nothing changes.
    code, out, _ = kb(tmp_path, "import", str(target), data="data")
    assert code == 0 and "3 unchanged" in out, out


def test_markdown_folder_takes_the_file_name_as_id(tmp_path: Path) -> None:
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "opening-hours.md").write_text(
        "---\ntitle: When are you open?\nlanguage: en\nquestions: [Are you open on Sunday?]\n"
        "status: published\n---\n\nMonday to Friday, 8 to 20.\n"
    )
    (folder / "broken.md").write_text("---\ntitle: [unclosed\n---\nbody\n")
    code, out, err = kb(tmp_path, "import", str(folder))
    assert code == 1 and "1 created" in out, (out, err)
    assert f"{folder / 'broken.md'}:" in err
    [row] = exported(tmp_path, "data")
    assert (row["id"], row["body"]) == ("opening-hours", "Monday to Friday, 8 to 20.")


def test_search_and_reindex(tmp_path: Path) -> None:
    kb(tmp_path, "import", str(write_jsonl(tmp_path / "in.jsonl", ARTICLES)))
    code, out, _ = kb(tmp_path, "search", "can I send something back", "--limit", "3")
    assert code == 0, out
    assert "returns" in out and "How do I return an item?" in out, out
    assert "shipping" not in out  # in review: not published, not searchable
    code, out, _ = kb(tmp_path, "search", "重置密码", "--lang", "zh")
    assert code == 0 and "no matching articles" in out, out  # a draft

    shutil.rmtree(tmp_path / "data" / "kb-index")
    code, out, _ = kb(tmp_path, "reindex")
    assert code == 0 and "reindexed 1 published" in out, out
    code, out, _ = kb(tmp_path, "search", "return policy")
    assert code == 0 and "returns" in out, out
    code, _, err = kb(tmp_path, "search", "   ")
    assert code == 1 and "empty" in err
