"""Helpers for tests that drive the hub over real sockets."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("OMNIHUB_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("OMNIHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AGENT_EMAIL = "agent@demo.omnihub.test"
AGENT_PASSWORD = "omnihub-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...), read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces and parentheses: fields start after the last ')'.
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def wait_gone(pids: set[int], timeout: float = 15) -> None:
    """Fail unless every process in `pids` has exited within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    alive = set(pids)
    while alive and time.monotonic() < deadline:
        alive = {p for p in alive if Path(f"/proc/{p}").exists() and not _zombie(p)}
        time.sleep(0.1)
    assert not alive, f"processes {sorted(alive)} outlived the hub"


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


@dataclass
class HubProcess:
    """A real `omnihub serve` subprocess."""

    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> HubProcess:
        env = {
            **os.environ,
            # Off unless the test turns it on: system tests count messages and statuses.
            "OMNIHUB_BOT_ENABLED": "0",
            **self.env,
            "OMNIHUB_PORT": str(self.port),
            "OMNIHUB_HOST": "127.0.0.1",
        }
        assert self.log_path is not None
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "serve"], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"hub did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crash. Its helper processes (the storage
        writer) must notice and exit on their own."""
        if self.proc and self.proc.poll() is None:
            helpers = descendants(self.proc.pid)
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            wait_gone(helpers)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            helpers = descendants(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
            wait_gone(helpers)


class Customer:
    """A web chat customer over HTTP + websocket."""

    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base = http, base
        self.token = ""
        self.conversation_id = 0
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self, token: str | None = None, language: str | None = None) -> Customer:
        body = {"token": token} if token else {}
        if language:
            body["language"] = language
        async with self.http.post(self.base + "/api/webchat/sessions", json=body) as resp:
            assert resp.status in (200, 201), await resp.text()
            data = await resp.json()
        self.token, self.conversation_id = data["token"], data["conversation_id"]
        return self

    async def connect(self) -> aiohttp.ClientWebSocketResponse:
        self.ws = await self.http.ws_connect(self.base + "/api/webchat/ws?token=" + self.token)
        return self.ws

    async def say(self, text: str, client_id: str) -> dict[str, Any]:
        assert self.ws is not None
        await self.ws.send_json({"type": "message", "client_id": client_id, "text": text})
        return await next_frame(self.ws, lambda f: f.get("client_id") == client_id)

    async def history(self) -> dict[str, Any]:
        async with self.http.get(
            self.base + "/api/webchat/history", params={"token": self.token}
        ) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())


class Agent:
    """A signed-in agent: cookie session + CSRF header."""

    def __init__(self, http: aiohttp.ClientSession, base: str):
        self.http, self.base = http, base
        self.csrf = ""
        self.id = 0

    async def login(self, email: str = AGENT_EMAIL, password: str = AGENT_PASSWORD) -> Agent:
        async with self.http.post(
            self.base + "/api/auth/login", json={"email": email, "password": password}
        ) as resp:
            assert resp.status == 200, await resp.text()
            data = await resp.json()
        self.csrf, self.id = data["csrf_token"], data["agent"]["id"]
        return self

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(
            self.base + path,
            json=body if body is not None else {},
            headers={"X-CSRF-Token": self.csrf},
        ) as resp:
            return resp.status, await resp.json() if resp.status != 204 else None

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with self.http.get(self.base + path, params=params) as resp:
            return resp.status, await resp.json()

    async def events(self) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(self.base + "/api/agent/ws")


async def next_frame(
    ws: aiohttp.ClientWebSocketResponse, match: Any = None, timeout: float = 15
) -> dict[str, Any]:
    """The next JSON frame that satisfies `match` (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended: {msg.type} {msg.data!r}")
            frame = json.loads(msg.data)
            if match is None or match(frame):
                return dict(frame)
