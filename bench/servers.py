"""Start, probe and stop the servers under test (the hub and the echo baseline) as subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from benchlib import LOOPBACK, free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


class ServerError(RuntimeError):
    """A server under test did not start or died."""


@dataclass
class ManagedServer:
    """A server subprocess this benchmark started (or, with `process=None`, one it did not)."""

    name: str
    base_url: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    log_file: IO[bytes] | None = None

    def alive(self) -> bool:
        """True while the subprocess runs (always True for an external server)."""
        return self.process is None or self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_GRACE_S; return the exit code (None if external)."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                code = self.process.wait()
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None
        return code

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the subprocess wrote to stdout/stderr."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _http_status(url: str, timeout: float) -> int | None:
    """GET `url` without any proxy; the HTTP status, or None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def wait_ready(server: ManagedServer, timeout: float = READY_TIMEOUT_S) -> float:
    """Poll `GET /readyz` until it answers 200; return the seconds it took."""
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise ServerError(f"{server.name} exited during start-up:\n{server.log_tail()}")
        if _http_status(f"{server.base_url}/readyz", timeout=2.0) == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise ServerError(
        f"{server.name}: GET /readyz did not answer 200 within {timeout:.0f} s:\n"
        f"{server.log_tail()}"
    )


def _spawn(
    name: str, argv: list[str], env: dict[str, str], log_path: Path, port: int
) -> ManagedServer:
    """Start `argv` in its own session with output to `log_path`."""
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches only the benchmark, which then stops it
    )
    return ManagedServer(
        name=name,
        base_url=f"http://{LOOPBACK}:{port}",
        process=process,
        log_path=log_path,
        log_file=log_file,
    )


def start_echo(python: str, workdir: Path) -> ManagedServer:
    """Start bench/echo_server.py on a free loopback port and wait until it is ready."""
    port = free_port()
    argv = [python, str(BENCH_DIR / "echo_server.py"), "--host", LOOPBACK, "--port", str(port)]
    server = _spawn("echo", argv, dict(os.environ), workdir / "echo.log", port)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def start_hub(
    python: str, workdir: Path, extra_env: dict[str, str] | None = None
) -> ManagedServer:
    """Start `python -m hub serve` on a free port with a fresh data dir; wait until ready.

    `extra_env` adds settings (e.g. OMNIHUB_CHANNELS for a channel's benchmark)."""
    port = free_port()
    data_dir = workdir / "hub-data"
    data_dir.mkdir()
    env = dict(os.environ)
    env.update(
        OMNIHUB_PORT=str(port),
        OMNIHUB_HOST=LOOPBACK,
        OMNIHUB_DATA_DIR=str(data_dir),
        OMNIHUB_DEMO="0",
        # The durable message path is measured (issue #2); the bot has its own benchmark.
        OMNIHUB_BOT_ENABLED="0",
        OMNIHUB_LOG_LEVEL="warning",
    )
    env.update(extra_env or {})
    server = _spawn("hub", [python, "-m", "hub", "serve"], env, workdir / "hub.log", port)
    try:
        wait_ready(server)
    except BaseException:
        server.stop()
        raise
    return server


def external(name: str, base_url: str) -> ManagedServer:
    """An already running server (`--hub-url`); it must answer `GET /readyz` 200."""
    server = ManagedServer(name=name, base_url=base_url.rstrip("/"))
    wait_ready(server, timeout=10.0)
    return server
