"""Small helpers shared by the benchmark processes (orchestrator, client workers, echo server)."""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


def add_kb_arguments(parser: argparse.ArgumentParser) -> None:
    """The knowledge-base benchmarks' common options: the data and the ranking mode."""
    parser.add_argument("--articles", type=Path, required=True)
    parser.add_argument("--queries", type=Path, action="append", required=True)
    parser.add_argument(
        "--semantic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fuse the semantic stage in (default) or rank by BM25 only",
    )
    add_multilingual_argument(parser)


def add_multilingual_argument(parser: argparse.ArgumentParser) -> None:
    """`--multilingual`: the encoder of Chinese and code-mixed questions (kb/multilingual.py)."""
    parser.add_argument(
        "--multilingual",
        choices=("auto", "e5", "use", "off"),
        default="auto",
        help="encoder of Chinese and code-mixed questions (kb/multilingual.py)",
    )


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit up to the hard limit; return the resulting soft limit.

    Every websocket is a file descriptor on both ends, so 1,000 sockets plus the
    hub's database and log files can exceed a default soft limit of 1,024.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        return soft
    return target


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(sorted_values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = math.ceil(pct / 100.0 * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def log(text: str) -> None:
    """Progress line on stderr (stdout carries the report and the JSON line)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def in_scratch_dir(prefix: str, run: Callable[[Path], int]) -> int:
    """`run(workdir)` in a fresh temporary folder: removed after a clean run (status 0),
    kept (server logs, hub data) for inspection otherwise. Returns the status."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    status = 1
    try:
        status = run(workdir)
    finally:
        if status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir} (server logs, hub data) for inspection")
    return status
