"""The `omnihub` command: serve, db upgrade, agents add, kb import/export/reindex/search/
evaluate/calibrate, simulate, erlang, phone check, speech install."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import getpass
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from hub import heap
from hub.cli_phone import add_phone_commands
from hub.cli_routing import add_routing_commands
from hub.config import Settings, load_settings
from hub.errors import ConfigError, HubError
from hub.model import Role

if TYPE_CHECKING:
    from hub.ports import KbResult
    from hub.services import kb_evaluation
    from hub.services.articles import ArticleService


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from aiohttp import web

    from hub.api import create_app
    from hub.api.routing import ROUTING

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)

    async def banner(app: web.Application) -> None:
        print("\n".join(banner_lines(settings, routing=ROUTING in app)), flush=True)

    async def settle_heap(_app: web.Application) -> None:
        heap.settle()

    app.on_startup.append(banner)
    app.on_startup.append(settle_heap)  # last: after every start-up context is in place
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None if settings.log_level != "debug" else logging.getLogger("aiohttp.access"),
    )
    return 0


def banner_lines(settings: Settings, *, routing: bool) -> list[str]:
    """What `serve` prints once it listens: the pages (as the README lists them) and, with
    the demo, the logins; with routing on, how to be offered conversations."""
    base = settings.effective_public_url
    lines = [
        f"omnihub serving on {base}",
        f"  demo page with the chat widget: {base}/demo",
        f"  agent inbox:                    {base}/inbox",
        f"  knowledge-base editor:          {base}/kb",
        f"  public help center:             {base}/help",
        f"  API description:                {base}/api/openapi.json",
    ]
    if settings.demo:
        password = settings.demo_agent_password
        lines.append(f"  demo agent login: {settings.demo_agent_email} / {password}")
        if routing and settings.demo_routing:
            from hub.demo import team

            lines.append(
                f"  second demo agent (Chinese, special needs): {team.SECOND_AGENT_EMAIL} / "
                f"{password}"
            )
        lines.append(
            f"  demo editor login (knowledge base): {settings.demo_editor_email} / {password}"
        )
    if routing:
        lines.append(
            "  skill-based routing is on: choose Available in the inbox header to be offered "
            "conversations"
        )
    return lines


def _db_upgrade(settings: Settings, args: argparse.Namespace) -> int:
    from hub.storage import migrate

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _agents_add(settings: Settings, args: argparse.Namespace) -> int:
    from hub.services.agents import AgentService
    from hub.storage import SqlStore, migrate

    # `--password ""` is a (too short) password, not an omitted one: only None prompts.
    password = args.password
    if password is None:
        if not sys.stdin.isatty():
            raise ConfigError("--password is required when there is no terminal to prompt on")
        password = getpass.getpass("password for the new agent: ")

    async def run() -> str:
        store = SqlStore.from_url(settings.effective_database_url)
        try:
            agent = await AgentService(store, timedelta(hours=1)).add(
                args.email, args.name, Role(args.role), password
            )
            return f"agent {agent.id} {agent.email} ({agent.role}) added"
        finally:
            await store.close()

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.effective_database_url)
    print(asyncio.run(run()))
    return 0


# --- knowledge base -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_knowledge_base(
    settings: Settings, *, check: bool = True
) -> AsyncIterator[ArticleService]:
    """The article service on the configured database and index, for one command.

    With `check`, an index that does not hold exactly the published articles (lost, or
    emptied by a schema change) is rebuilt first, as `omnihub serve` does at start.

    With OMNIHUB_REDIS_URL set, the changes are also published on the event bus, so running
    hub processes bring their own indexes in step at once.
    """
    from hub.services.articles import ArticleService
    from hub.services.kb_index import IndexKeeper
    from hub.storage import SqlStore, migrate
    from kb import open_index

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(migrate.upgrade, settings.effective_database_url)
    store = SqlStore.from_url(settings.effective_database_url)
    bus = None
    if settings.redis_url:
        from hub.events import RedisBus

        bus = RedisBus(settings.redis_url)
    keeper = IndexKeeper(
        store,
        functools.partial(open_index, settings.kb_index_dir, **settings.kb_index_options),
    )
    try:
        if bus is not None:
            from hub.api.app import bus_publisher  # only then: the app is slow to import

            await bus.start()
            store.on_commit = bus_publisher(bus)
        await keeper.open()
        if check:
            await keeper.check()
        yield ArticleService(store, keeper)
    finally:
        await keeper.close()
        if bus is not None:
            await bus.close()
        await store.close()


def _progress_bar(unit: str) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A tqdm bar on stderr (silent when stderr is not a terminal): (update, close)."""
    from tqdm import tqdm

    bar = tqdm(file=sys.stderr, unit=unit, disable=None, leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    return update, bar.close


def _kb_import(settings: Settings, args: argparse.Namespace) -> int:
    from hub.services import kb_io

    async def run() -> kb_io.ImportReport:
        update, close = _progress_bar("article")
        try:
            async with open_knowledge_base(settings) as service:
                return await kb_io.import_articles(
                    service, Path(args.path), args.format, publish=args.publish, progress=update
                )
        finally:
            close()

    report = asyncio.run(run())
    for error in report.errors:
        print(error, file=sys.stderr)
    print(f"imported {args.path}: {report.summary()}")
    return 0 if report.ok else 1


def _kb_export(settings: Settings, args: argparse.Namespace) -> int:
    from hub.services import kb_io

    async def run() -> int:
        async with open_knowledge_base(settings, check=False) as service:
            return await kb_io.export_articles(service, Path(args.path), args.format)

    print(f"exported {asyncio.run(run())} articles to {args.path}")
    return 0


def _kb_reindex(settings: Settings, _args: argparse.Namespace) -> int:
    async def run() -> int:
        update, close = _progress_bar("article")
        try:
            async with open_knowledge_base(settings, check=False) as service:
                return await service.keeper.rebuild(update)
        finally:
            close()

    print(f"reindexed {asyncio.run(run())} published articles into {settings.kb_index_dir}")
    return 0


def _kb_search(settings: Settings, args: argparse.Namespace) -> int:
    from hub.api.app import bot_decider  # the bot's decision, thresholds per language
    from hub.model import KbSource

    async def run() -> list[str]:
        async with open_knowledge_base(settings) as service:
            result = await service.search(args.question, args.lang, args.limit, KbSource.CONSOLE)
        kind, ids = bot_decider(settings).decide(result)
        if kind == "answer":
            lines = [f"answer: {ids[0]}"]
        elif kind == "clarify":
            lines = [f"decision: clarify (asks which of {', '.join(ids)})"]
        else:
            lines = ["decision: escalate (no confident answer)"]
        for n, hit in enumerate(result.hits, 1):
            lines.append(
                f"{n:2}. {hit.score:7.3f}  {hit.article_id}  [{hit.language}]  {hit.title}"
            )
            if hit.short_answer:
                lines.append(f"    {hit.short_answer}")
        if not result.hits:
            lines.append("no matching articles")
        if result.suggestion:
            lines.append(f"did you mean: {result.suggestion}")
        return lines

    print("\n".join(asyncio.run(run())))
    return 0


async def _replayed(
    settings: Settings, path: Path
) -> tuple[list[kb_evaluation.Replay], kb_evaluation.Decider]:
    """The questions of `path` searched on the configured knowledge base as the bot searches
    (not recorded for the gap report: these are a test, not customers)."""
    from hub.services import kb_evaluation

    questions = kb_evaluation.read_questions(path)  # a bad file fails before anything opens
    from hub.api.app import bot_decider  # the composition root builds the bot's decision

    decider = bot_decider(settings)
    async with open_knowledge_base(settings) as service:

        async def search(query: str) -> KbResult:
            return await service.keeper.search(query, None, kb_evaluation.SEARCH_LIMIT)

        return await kb_evaluation.replay(questions, search, decider), decider


def _kb_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from hub.services import kb_evaluation

    replays, decider = asyncio.run(_replayed(settings, Path(args.path)))
    figures = kb_evaluation.count(replays, decider)
    modes = sorted({r.key for r in replays if r.key})
    print(f"{len(replays)} questions from {args.path}; thresholds by: {', '.join(modes) or '-'}")
    print("\n".join(kb_evaluation.evaluation_table(figures)))
    return 0


def _kb_calibrate(settings: Settings, args: argparse.Namespace) -> int:
    from hub.services import kb_evaluation

    for name in ("target_precision", "min_oos_recall"):
        if not 0 < getattr(args, name) <= 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be above 0 and at most 1")
    replays, decider = asyncio.run(_replayed(settings, Path(args.path)))
    choices = kb_evaluation.calibrate(
        replays, decider, args.target_precision, args.min_oos_recall
    )
    print(
        f"{len(replays)} questions from {args.path}; targets: answer precision >= "
        f"{args.target_precision}, out-of-scope recall >= {args.min_oos_recall}"
    )
    print("\n".join(kb_evaluation.calibration_table(choices)))
    thresholds = decider.thresholds()
    margins = {k: v for k, v in decider.margins().items() if k != "*"}
    picked = 0
    for c in choices:
        if c.threshold is not None and c.margin is not None:
            thresholds[c.key], margins[c.key], picked = c.threshold, c.margin, picked + 1
    if not picked:
        print("nothing to calibrate: no question found an article")
        return 1
    lines = kb_evaluation.settings_lines(thresholds, margins)
    print("\nTo use them, put these lines in the hub's TOML settings file (OMNIHUB_CONFIG):")
    print(f"  {lines[0]}\n  {lines[1]}\nor set these environment variables:")
    print(f"  {lines[2]}\n  {lines[3]}")
    print("then restart the hub (`omnihub kb evaluate` shows the result).")
    return 0 if all(c.met for c in choices) else 3


def _add_kb_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from hub.services.kb_io import FORMATS

    kb = sub.add_parser(
        "kb",
        help="knowledge base: import, export, reindex, search, evaluate, calibrate",
        description="Knowledge-base (FAQ) commands. The database holds the articles; the "
        "search index under OMNIHUB_DATA_DIR/kb-index is derived from it.",
    )
    kb_sub = kb.add_subparsers(dest="kb_command", required=True, metavar="COMMAND")
    formats = (
        "jsonl: one JSON object a line with id, title, body, questions (list), short_answer, "
        "language (en|zh), tags (list), status; csv: the same columns, questions and tags "
        "separated by '|'; markdown: a folder of .md files with YAML front matter (the body "
        "is the Markdown; the file name is the id when none is given). Default: from the "
        "name (.jsonl, .csv, a folder)."
    )
    imp = kb_sub.add_parser(
        "import",
        help="import articles (idempotent by id)",
        description="Import articles from a file or folder. Idempotent by id: unchanged "
        "articles are left alone, changed ones become new versions. Bad rows are reported as "
        "FILE:LINE: reason and the rest imported. Status: the row's own, else published with "
        "--publish, else draft for new articles (existing ones keep theirs). Exit status 0 "
        "when every row was good, 1 when some were bad.",
    )
    imp.add_argument("path", metavar="PATH", help="a .jsonl or .csv file, or a folder of .md")
    imp.add_argument("--format", choices=FORMATS, help=formats)
    imp.add_argument(
        "--publish", action="store_true", help="publish articles whose row gives no status"
    )
    imp.set_defaults(func=_kb_import)

    exp = kb_sub.add_parser(
        "export",
        help="export every article",
        description="Export every article (all statuses) in a format `kb import` reads back.",
    )
    exp.add_argument("path", metavar="PATH", help="a .jsonl or .csv file, or a folder for .md")
    exp.add_argument("--format", choices=FORMATS, help=formats)
    exp.set_defaults(func=_kb_export)

    reindex = kb_sub.add_parser(
        "reindex",
        help="rebuild the search index from the database",
        description="Rebuild the search index from the published articles in the database.",
    )
    reindex.set_defaults(func=_kb_reindex)

    search = kb_sub.add_parser(
        "search",
        help="search published articles as the bot does",
        description="Search published articles with the bot's ranking and answer decision.",
    )
    search.add_argument("question")
    search.add_argument("--lang", help="en or zh (default: both)")
    search.add_argument("--limit", type=int, default=5, help="hits to show (default: 5)")
    search.set_defaults(func=_kb_search)

    questions = (
        "JSON Lines, one question a line: "
        '{"text": "...", "expected": "article-id"} or "expected": null when no article answers '
        'it; optional "language" to report under (default: the question\'s script).'
    )
    evaluate = kb_sub.add_parser(
        "evaluate",
        help="measure the knowledge base on labelled questions",
        description="Put every question to the configured knowledge base as the bot does and "
        "print hit@1, hit@3, MRR, answer precision, in-scope accuracy and out-of-scope recall "
        "per language and overall. " + questions,
    )
    evaluate.add_argument("path", metavar="QUESTIONS.jsonl")
    evaluate.set_defaults(func=_kb_evaluate)

    calibrate = kb_sub.add_parser(
        "calibrate",
        help="pick the bot's answer thresholds from labelled questions",
        description="Search every question once as the bot does, replay the bot's decision "
        "under every useful threshold per question language and ranking mode, and print the "
        "thresholds that meet the targets (or the best trade-off) with the settings line to "
        "use. Changes nothing. Exit status 0 when every target is met, 3 when not. "
        + questions,
    )
    calibrate.add_argument("path", metavar="QUESTIONS.jsonl")
    calibrate.add_argument(
        "--target-precision",
        type=float,
        default=0.90,
        help="share of the bot's answers that must be right (default: 0.90)",
    )
    calibrate.add_argument(
        "--min-oos-recall",
        type=float,
        default=0.80,
        help="share of unanswerable questions that must be escalated (default: 0.80)",
    )
    calibrate.set_defaults(func=_kb_calibrate)


def _speech_install(settings: Settings, args: argparse.Namespace) -> int:
    from channels.speech.install import ModelInstallError, install_model

    dest = Path(args.dest) if args.dest else settings.data_dir / "speech-models"
    try:
        installed = install_model(Path(args.path), dest, language=args.language)
    except ModelInstallError as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 1
    print(f"installed the speech model in {installed.path}")
    print(f"use it with the setting: {installed.setting()}")
    if installed.language is None:
        print("(LL: the model's language, e.g. en or zh; pass --language next time)")
    return 0


def _add_speech_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    speech = sub.add_parser(
        "speech", help="speech models for calls", description="Speech recognition models."
    )
    speech_sub = speech.add_subparsers(dest="speech_command", required=True, metavar="COMMAND")
    install = speech_sub.add_parser(
        "install",
        help="unpack and verify a Vosk model zip",
        description="Unpack a Vosk model zip (alphacephei.com/vosk/models) safely, check that "
        "it is a complete model Vosk loads, and print the speech_models setting to use.",
    )
    install.add_argument("path", metavar="PATH.zip")
    install.add_argument("--language", help="the model's language (default: from its name)")
    install.add_argument("--dest", help="folder to unpack into (default: DATA_DIR/speech-models)")
    install.set_defaults(func=_speech_install)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnihub",
        description="Self-hosted omnichannel contact-center hub. Settings come from OMNIHUB_* "
        "environment variables and the optional TOML file named by OMNIHUB_CONFIG.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="serve the hub (HTTP API, web chat, inbox)",
        description="Serve the hub on OMNIHUB_HOST:OMNIHUB_PORT.",
    )
    serve.add_argument("--port", type=int, help="override OMNIHUB_PORT")
    serve.add_argument("--host", help="override OMNIHUB_HOST")
    serve.set_defaults(func=_serve)

    db = sub.add_parser("db", help="database schema", description="Database schema commands.")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="COMMAND")
    up = db_sub.add_parser(
        "upgrade",
        help="apply schema migrations",
        description="Apply Alembic migrations up to a revision.",
    )
    up.add_argument("revision", nargs="?", default="head", help="target revision (default: head)")
    up.set_defaults(func=_db_upgrade)

    agents = sub.add_parser("agents", help="manage agents", description="Manage agent accounts.")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    add = agents_sub.add_parser("add", help="add an agent", description="Add an agent account.")
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.AGENT.value)
    add.add_argument("--password", help="prompted for when omitted")
    add.set_defaults(func=_agents_add)
    _add_kb_commands(sub)
    add_routing_commands(sub)
    add_phone_commands(sub)
    _add_speech_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {k: v for k in ("port", "host") if (v := getattr(args, k, None)) is not None}
    try:
        settings = load_settings(**overrides)
    except ConfigError as exc:
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.log_level != "debug":
        # rasa-sdk logs every action it registers; the hub builds an executor per caller (its
        # own turns, /webhook, the KB console), so those lines would repeat. The composition
        # root names the bot's actions once instead.
        logging.getLogger("rasa_sdk.executor").setLevel(logging.WARNING)
    try:
        return int(args.func(settings, args))
    except (HubError, ConfigError) as exc:
        print(f"omnihub: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1
