"""The `omnihub` command: serve, db upgrade, agents add."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta

from hub.config import Settings, load_settings
from hub.errors import ConfigError, HubError
from hub.model import Role


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from aiohttp import web

    from hub.api import create_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    base = settings.effective_public_url

    async def banner(_app: web.Application) -> None:
        lines = [
            f"omnihub serving on {base}",
            f"  demo page with the chat widget: {base}/demo",
            f"  agent inbox:                    {base}/inbox",
            f"  API description:                {base}/api/openapi.json",
        ]
        if settings.demo:
            lines.append(
                f"  demo agent login: {settings.demo_agent_email} / {settings.demo_agent_password}"
            )
        print("\n".join(lines), flush=True)

    app.on_startup.append(banner)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None if settings.log_level != "debug" else logging.getLogger("aiohttp.access"),
    )
    return 0


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
    try:
        return int(args.func(settings, args))
    except (HubError, ConfigError) as exc:
        print(f"omnihub: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return 1
