"""Shared fixtures: the hub on SQLite and on the local PostgreSQL, real sockets throughout."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from hub.api import create_app
from hub.config import Settings, normalise_database_url
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, PG_URL, Agent, Customer, HubProcess


def _admin_url(url: str) -> str:
    return normalise_database_url(url)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run (fails, never skips, when PG is down)."""
    name = f"omnihub_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(_admin_url(PG_URL), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable (run `make services`): {exc}")
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate(url: str) -> None:
    engine = sa.create_engine(_admin_url(url))
    with engine.begin() as conn:
        tables = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables"
                    " WHERE schemaname='public' AND tablename<>'alembic_version'"
                )
            )
        ]
        if tables:
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None means the embedded SQLite default in the data directory."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    try:
        _truncate(url)
    except sa.exc.ProgrammingError:
        pass  # not migrated yet: the app does it on start
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        demo=True,
        bot_enabled=False,  # core tests count messages and statuses; tests/bot turns it on
        log_level="warning",
        demo_agent_email=AGENT_EMAIL,
        demo_agent_password=AGENT_PASSWORD,
    )


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    """The hub app on a real TCP socket (aiohttp's test server)."""
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


@pytest.fixture
def base_url(hub: TestClient[Any, Any]) -> str:
    return str(hub.make_url("")).rstrip("/")


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def agent_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A separate cookie jar for the agent (unsafe=True: cookies for 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


@pytest.fixture
async def customer(http: aiohttp.ClientSession, base_url: str) -> Customer:
    return await Customer(http, base_url).start()


@pytest.fixture
async def agent(agent_http: aiohttp.ClientSession, base_url: str) -> Agent:
    return await Agent(agent_http, base_url).login()


class LiveHub:
    def __init__(self, proc: HubProcess):
        self.proc = proc
        self.url = proc.url
        self.agent_email = AGENT_EMAIL
        self.agent_password = AGENT_PASSWORD


def start_live_hub(tmp_path: Path, **env: str) -> HubProcess:
    """A real `omnihub serve` subprocess on SQLite with the demo tenant; `env` adds settings."""
    proc = HubProcess(
        env={
            "OMNIHUB_DATA_DIR": str(tmp_path / "live"),
            "OMNIHUB_DEMO": "1",
            "OMNIHUB_LOG_LEVEL": "warning",
            **env,
        }
    )
    proc.log_path = tmp_path / "hub.log"
    proc.start()
    return proc


@pytest.fixture
def live_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """The hub for browser tests (bot off: they exercise the agent loop)."""
    proc = start_live_hub(tmp_path)
    try:
        yield LiveHub(proc)
    finally:
        proc.stop()
