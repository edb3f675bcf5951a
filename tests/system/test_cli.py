"""The `omnihub` console script: help, `db upgrade`, `agents add` and configuration errors.

Every command runs as a real subprocess of the installed console script, in a clean
environment (no OMNIHUB_* from the caller) with its working directory in tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest
from alembic.script import ScriptDirectory

from hub.storage.migrate import alembic_config
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, Agent, Customer, HubProcess, free_port

OMNIHUB = Path(sys.executable).parent / "omnihub"


# --- helpers ----------------------------------------------------------------------------------


def omnihub(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console script; `env` adds OMNIHUB_* settings to a clean environment."""
    assert OMNIHUB.is_file(), f"{OMNIHUB} is missing: install the project (pip install -e .)"
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    return subprocess.run([str(OMNIHUB), *args], cwd=cwd, env={**clean, **env},
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          check=False)


def described(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout: {result.stdout}\nstderr: {result.stderr}"


def assert_fails_cleanly(result: subprocess.CompletedProcess[str], code: int,
                         *needles: str) -> None:
    """A non-zero exit with a one-line message on stderr naming what is wrong, no traceback."""
    assert result.returncode == code, described(result)
    assert "Traceback" not in result.stderr, described(result)
    for needle in needles:
        assert needle in result.stderr, f"stderr should mention {needle!r}:\n{described(result)}"


def sqlite_file(data_dir: Path) -> Path:
    return data_dir / "omnihub.sqlite3"


def schema_revision(db: Path) -> list[str]:
    with closing(sqlite3.connect(db)) as conn:
        return [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]


def head_revision(db: Path) -> str | None:
    return ScriptDirectory.from_config(alembic_config(f"sqlite:///{db}")).get_current_head()


def settings(data_dir: Path, **more: str) -> dict[str, str]:
    # A free port: should a bad value slip through, `serve` must not grab a real one.
    return {"OMNIHUB_DATA_DIR": str(data_dir), "OMNIHUB_LOG_LEVEL": "warning",
            "OMNIHUB_PORT": str(free_port()), **more}


def add_agent(cwd: Path, data_dir: Path, email: str, password: str,
              role: str = "supervisor") -> subprocess.CompletedProcess[str]:
    return omnihub(cwd, "agents", "add", "--email", email, "--name", "X", "--role", role,
                   "--password", password, **settings(data_dir))


async def start_hub(tmp_path: Path, **env: str) -> HubProcess:
    hub = HubProcess(env={"OMNIHUB_LOG_LEVEL": "warning", **env})
    hub.log_path = tmp_path / "hub.log"
    await asyncio.to_thread(hub.start)
    return hub


# --- help -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "needles"), [
    ((), ["usage: omnihub", "serve", "db", "agents", "OMNIHUB_CONFIG"]),
    (("serve",), ["usage: omnihub serve", "--port", "--host", "OMNIHUB_PORT"]),
    (("db", "upgrade"), ["usage: omnihub db upgrade", "revision", "migrations"]),
    (("agents", "add"), ["usage: omnihub agents add", "--email", "--name", "--role", "--password",
                         "supervisor"]),
])
def test_help_describes_each_command(tmp_path: Path, args: tuple[str, ...],
                                     needles: list[str]) -> None:
    result = omnihub(tmp_path, *args, "--help")
    assert result.returncode == 0, described(result)
    for needle in needles:
        assert needle in result.stdout, f"`omnihub {' '.join(args)} --help` lacks {needle!r}"
    assert not (tmp_path / "var").exists(), "--help must not touch the data directory"


def test_unknown_role_is_a_usage_error(tmp_path: Path) -> None:
    result = omnihub(tmp_path, "agents", "add", "--email", "a@b.test", "--name", "A",
                     "--role", "boss", "--password", "longenough1", **settings(tmp_path / "data"))
    assert_fails_cleanly(result, 2, "invalid choice", "boss")


# --- db upgrade -------------------------------------------------------------------------------


def test_db_upgrade_creates_the_sqlite_database_and_is_idempotent(tmp_path: Path) -> None:
    data_dir = tmp_path / "fresh" / "data"  # not there yet
    db = sqlite_file(data_dir)

    first = omnihub(tmp_path, "db", "upgrade", **settings(data_dir))
    assert first.returncode == 0, described(first)
    assert db.is_file(), f"no database at {db}: {described(first)}"
    head = head_revision(db)
    assert head is not None and schema_revision(db) == [head]

    added = add_agent(tmp_path, data_dir, "kept@y.test", "longenough1")
    assert added.returncode == 0, described(added)
    second = omnihub(tmp_path, "db", "upgrade", **settings(data_dir))
    assert second.returncode == 0, described(second)
    assert schema_revision(db) == [head]
    again = add_agent(tmp_path, data_dir, "kept@y.test", "longenough1")
    assert_fails_cleanly(again, 1, "kept@y.test")  # the second upgrade kept the data


# --- agents add -------------------------------------------------------------------------------


async def test_agents_add_then_duplicate_then_login(
    tmp_path: Path, agent_http: aiohttp.ClientSession
) -> None:
    data_dir = tmp_path / "data"
    added = add_agent(tmp_path, data_dir, "x@y.test", "longenough1")
    assert added.returncode == 0, described(added)
    assert "x@y.test" in added.stdout and "supervisor" in added.stdout, described(added)

    for email in ("x@y.test", "  X@Y.test "):  # emails are compared trimmed and lower-cased
        duplicate = add_agent(tmp_path, data_dir, email, "anotherpass2")
        assert_fails_cleanly(duplicate, 1, "x@y.test", "exists")

    hub = await start_hub(tmp_path, OMNIHUB_DATA_DIR=str(data_dir), OMNIHUB_DEMO="0")
    try:
        agent = await Agent(agent_http, hub.url).login("x@y.test", "longenough1")
        status, me = await agent.get("/api/auth/me")
        assert status == 200, me
        assert (me["agent"]["email"], me["agent"]["name"], me["agent"]["role"]) == (
            "x@y.test", "X", "supervisor")
        # The duplicate attempt did not change the password.
        async with agent_http.post(hub.url + "/api/auth/login",
                                   json={"email": "x@y.test", "password": "anotherpass2"}) as resp:
            assert resp.status == 401
        # OMNIHUB_DEMO=0: nobody else can sign in.
        async with agent_http.post(hub.url + "/api/auth/login",
                                   json={"email": AGENT_EMAIL, "password": AGENT_PASSWORD}) as resp:
            assert resp.status == 401, "OMNIHUB_DEMO=0 still seeded the demo agent"
    finally:
        hub.stop()


@pytest.mark.parametrize(("email", "password", "needle"), [
    ("short@y.test", "1234567", "at least 8 characters"),
    ("not-an-email", "longenough1", "not an email address"),
])
def test_agents_add_rejects_bad_input(tmp_path: Path, email: str, password: str,
                                      needle: str) -> None:
    result = add_agent(tmp_path, tmp_path / "data", email, password)
    assert_fails_cleanly(result, 1, needle)
    # Nothing was stored: the same email with a good password is accepted afterwards.
    if "@" in email:
        fixed = add_agent(tmp_path, tmp_path / "data", email, "longenough1")
        assert fixed.returncode == 0, described(fixed)


def test_agents_add_empty_password_is_rejected_not_prompted_for(tmp_path: Path) -> None:
    """`--password ""` is a (too short) password, not an omitted one."""
    result = add_agent(tmp_path, tmp_path / "data", "empty@y.test", "")
    assert "password for the new agent" not in result.stderr, (
        "BACKEND BUG (hub/cli.py _agents_add): `--password ''` is treated as omitted "
        "(`args.password or getpass.getpass(...)`) so the command prompts, and with no terminal "
        "it dies with an EOFError traceback instead of 'the password needs at least 8 "
        f"characters':\n{described(result)}")
    assert_fails_cleanly(result, 1, "at least 8 characters")


# --- configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize(("variable", "value"), [
    ("OMNIHUB_PORT", "abc"),
    ("OMNIHUB_PORT", "70000"),
    ("OMNIHUB_MAX_TEXT_CHARS", "0"),
    ("OMNIHUB_LOG_LEVEL", "loud"),
])
def test_bad_setting_stops_start_up_naming_it(tmp_path: Path, variable: str, value: str) -> None:
    env = settings(tmp_path / "data")
    env[variable] = value
    result = omnihub(tmp_path, "serve", **env)
    assert_fails_cleanly(result, 2, variable)
    assert not sqlite_file(tmp_path / "data").exists(), "a bad setting still touched the database"


def test_missing_config_file_stops_start_up(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "omnihub.toml"
    result = omnihub(tmp_path, "serve", **settings(tmp_path / "data", OMNIHUB_CONFIG=str(missing)))
    assert_fails_cleanly(result, 2, "OMNIHUB_CONFIG", str(missing))


@pytest.mark.parametrize(("toml", "needles"), [
    ("port = 0\n", ["port"]),
    ('max_text_chars = "many"\n', ["max_text_chars"]),
    ("prot = 8080\n", ["prot"]),  # a misspelt setting is not silently ignored
    ("port = [\n", ["omnihub.toml"]),  # not TOML at all: the message names the file
])
def test_bad_config_file_stops_start_up_naming_the_setting(
    tmp_path: Path, toml: str, needles: list[str]
) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text(toml)
    env = settings(tmp_path / "data", OMNIHUB_CONFIG=str(config))
    del env["OMNIHUB_PORT"]  # the file's value must be the one read
    result = omnihub(tmp_path, "serve", **env)
    assert_fails_cleanly(result, 2, *needles)


async def test_config_file_is_honoured_by_a_served_hub(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text("max_text_chars = 50\ndemo = false\n")
    hub = await start_hub(tmp_path, OMNIHUB_CONFIG=str(config),
                          OMNIHUB_DATA_DIR=str(tmp_path / "data"))
    try:
        customer = await Customer(http, hub.url).start()
        ws = await customer.connect()
        try:
            refused = await customer.say("x" * 60, "too-long")
            assert refused["type"] == "error", refused
            assert refused["code"] == "text_too_long", refused
            accepted = await customer.say("y" * 50, "just-right")
            assert accepted["type"] == "ack", accepted
        finally:
            await ws.close()
        history = await customer.history()
        assert [m["client_id"] for m in history["messages"]] == ["just-right"]
    finally:
        hub.stop()
