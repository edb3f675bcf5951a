"""Knowledge-base import and export: JSON Lines, CSV, and a folder of Markdown files.

Formats (one article each; `status` optional):

- **jsonl**: one JSON object a line: `{"id", "title", "body", "questions": [...],
  "short_answer"?, "language", "tags": [...], "status"?}`. Blank lines are skipped.
- **csv**: a header row with the columns `id,title,body,questions,short_answer,language,tags,
  status`; `questions` and `tags` are separated by `|` (so a question cannot contain `|`).
- **markdown**: a folder of `*.md` files, each with YAML front matter holding the fields above
  except `body`, which is the Markdown after the front matter; without an `id` the file name
  (without `.md`) is the id.

Import is idempotent by id: an unchanged article is left alone (no new version), a changed
one becomes a new version. Every row is validated; bad rows are reported as `file:line:
reason` and the others imported, each in its own transaction. Rows without an id get one made
from the title (so re-importing such a file adds them again: give ids). The status is the
row's own, else `published` with `publish=True`, else `draft` for new articles and unchanged
for existing ones.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import frontmatter
import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hub import model
from hub.errors import HubError
from hub.model import Article, ArticleStatus
from hub.ports import ArticleFilter
from hub.services.articles import ArticleInput, ArticleService, ImportResult, new_article_id

Format = Literal["jsonl", "csv", "markdown"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "markdown")
CSV_COLUMNS = ("id", "title", "body", "questions", "short_answer", "language", "tags", "status")
LIST_SEPARATOR = "|"


class ArticleRecord(BaseModel):
    """One article as written in an import file."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = None
    title: str
    body: str = ""
    questions: list[str] = []
    short_answer: str | None = None
    language: str
    tags: list[str] = []
    status: ArticleStatus | None = None


@dataclass(frozen=True, slots=True)
class Row:
    where: str  # "file:line"
    item: ArticleInput | None
    error: str | None = None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)  # "file:line: reason"

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (
            f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
            f"{len(self.errors)} bad"
        )


def detect_format(path: Path) -> Format:
    """The format a path's name suggests: a folder is Markdown files."""
    if path.is_dir():
        return "markdown"
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise HubError(f"{path}: cannot tell the format from the name; pass --format", code="format")


# --- reading ------------------------------------------------------------------------------------


def _problem(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _row(where: str, data: Any, default_id: str | None = None) -> Row:
    """Validate one record; every problem becomes the row's error, never an exception."""
    if not isinstance(data, dict):
        return Row(where, None, "expected an object with title, body, language, …")
    try:
        record = ArticleRecord.model_validate(data)
        content = model.article_content(
            title=record.title,
            body=record.body,
            questions=record.questions,
            short_answer=record.short_answer,
            language=record.language,
            tags=record.tags,
        )
        article_id = model.check_article_id(
            record.id or default_id or new_article_id(content.title)
        )
    except ValidationError as exc:
        return Row(where, None, _problem(exc))
    except HubError as exc:
        return Row(where, None, exc.detail)
    return Row(where, ArticleInput(content, article_id, record.status))


def _jsonl(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                yield Row(f"{path}:{n}", None, f"not JSON: {exc}")
                continue
            yield _row(f"{path}:{n}", data)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(LIST_SEPARATOR) if v.strip()]


def _csv(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.DictReader(f)
        columns = set(reader.fieldnames or ())
        if not {"title", "language"} <= columns <= set(CSV_COLUMNS):
            yield Row(
                f"{path}:1",
                None,
                f"the header must name the columns {','.join(CSV_COLUMNS)}"
                " (title and language at least)",
            )
            return
        line = reader.line_num + 1
        for record in reader:
            where = f"{path}:{line}"
            line = reader.line_num + 1  # a quoted body may span several lines
            if None in record:
                yield Row(where, None, "more fields than columns")
                continue
            data: dict[str, Any] = {k: v for k, v in record.items() if v not in (None, "")}
            data["questions"] = _split(record.get("questions"))
            data["tags"] = _split(record.get("tags"))
            yield _row(where, data)


def _markdown(folder: Path) -> Iterator[Row]:
    for path in sorted(folder.glob("*.md")):
        where = f"{path}:1"
        try:
            post = frontmatter.loads(path.read_text(encoding="utf-8", errors="replace"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 2}" if mark is not None else where  # after "---"
            yield Row(where, None, f"front matter is not valid YAML: {exc}")
            continue
        data: dict[str, Any] = {**post.metadata, "body": post.content}
        if isinstance(data.get("id"), int):
            data["id"] = str(data["id"])
        yield _row(where, data, default_id=path.stem)


def read_rows(path: Path, fmt: Format | None = None) -> list[Row]:
    """Every row of an import file (or folder), validated, in file order."""
    fmt = fmt or detect_format(path)
    if fmt == "markdown" and not path.is_dir():
        raise HubError(f"{path}: the markdown format is a folder of .md files", code="format")
    if fmt != "markdown" and not path.is_file():
        raise HubError(f"{path}: no such file", code="format")
    reader = {"jsonl": _jsonl, "csv": _csv, "markdown": _markdown}[fmt]
    rows = list(reader(path))
    first_seen: dict[str, str] = {}
    checked: list[Row] = []
    for row in rows:
        article_id = row.item.id if row.item is not None else None
        if article_id is not None and article_id in first_seen:
            first = first_seen[article_id]
            row = Row(row.where, None, f"id {article_id!r} again (first at {first})")
        elif article_id is not None:
            first_seen[article_id] = row.where
        checked.append(row)
    return checked


# --- importing ----------------------------------------------------------------------------------


async def import_articles(
    service: ArticleService,
    path: Path,
    fmt: Format | None = None,
    *,
    publish: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Import a file or folder; the public import path (CLI, demo seed, benchmarks).

    `progress(done, total)` is called after each row.
    """
    report = ImportReport()
    to_index: list[str] = []
    rows = read_rows(path, fmt)
    for n, row in enumerate(rows, 1):
        if row.item is None:
            report.errors.append(f"{row.where}: {row.error}")
        else:
            try:
                done = await service.import_article(row.item, publish=publish)
            except HubError as exc:
                report.errors.append(f"{row.where}: {exc.detail}")
            else:
                if done.indexed:
                    to_index.append(done.article_id)
                if done.result is ImportResult.CREATED:
                    report.created += 1
                elif done.result is ImportResult.UPDATED:
                    report.updated += 1
                else:
                    report.unchanged += 1
        if progress is not None:
            progress(n, len(rows))
    await service.keeper.refresh(to_index)
    return report


# --- exporting ----------------------------------------------------------------------------------


def _record(article: Article) -> dict[str, Any]:
    c = article.content
    data: dict[str, Any] = {
        "id": article.id,
        "title": c.title,
        "body": c.body,
        "questions": list(c.questions),
        "language": c.language,
        "tags": list(c.tags),
        "status": article.status.value,
    }
    if c.short_answer:
        data["short_answer"] = c.short_answer
    return data


def write_articles(path: Path, fmt: Format, articles: Sequence[Article]) -> None:
    """Write articles in a format `read_rows` reads back to the same content."""
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            for a in articles:
                f.write(json.dumps(_record(a), ensure_ascii=False) + "\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for a in articles:
            data = _record(a)
            data["questions"] = LIST_SEPARATOR.join(data["questions"])
            data["tags"] = LIST_SEPARATOR.join(data["tags"])
            writer.writerow(data)
        path.write_text(buffer.getvalue(), encoding="utf-8")
    else:
        path.mkdir(parents=True, exist_ok=True)
        for a in articles:
            data = _record(a)
            body = data.pop("body")
            post = frontmatter.Post(body, **data)
            text = frontmatter.dumps(post, sort_keys=False, allow_unicode=True)
            (path / f"{a.id}.md").write_text(text + "\n", encoding="utf-8")


async def export_articles(service: ArticleService, path: Path, fmt: Format | None = None) -> int:
    """Write every article (all statuses) to `path`; returns how many."""
    fmt = fmt or ("markdown" if path.suffix == "" else detect_format(path))
    views = await service.summaries(ArticleFilter(limit=None))
    articles = sorted((v.article for v in views), key=lambda a: a.id)
    write_articles(path, fmt, articles)
    return len(articles)
