"""Web chat benchmark: the hub's durable message path against a bare aiohttp echo server.

Run with `make bench` (= `.venv/bin/python bench/webchat.py`); `--quick` is a smoke run.

Method
------
Targets. Two servers are measured one after the other with the same client load, each in
its own subprocess so it has a CPU core to itself and never competes with the other:

* echo: `bench/echo_server.py`, a bare aiohttp websocket server that parses each JSON text
  frame and answers `{"type": "ack", "client_id": …, "message_id": <counter>}` (the hub's
  ack shape and size) without storing anything;
* hub: `python -m hub serve` with a fresh `OMNIHUB_DATA_DIR` (SQLite), `OMNIHUB_DEMO=0`,
  `OMNIHUB_BOT_ENABLED=0` (this measures the durable message path; the bot has
  bench/bot_decisions.py), `OMNIHUB_LOG_LEVEL=warning`, on a free loopback port, ready when
  `GET /readyz` answers 200; stopped with SIGTERM (SIGKILL after 10 s). `--hub-url`
  benches a running hub instead.

Clients. `--client-procs` worker processes (default 1: with two cores, one for the server
and one for the clients is the fair split) each open their share of `--sockets` websockets
(default 1,000) over one `aiohttp.ClientSession` without a connection limit. For the hub,
each socket first gets its own session (`POST /api/webchat/sessions {}` -> token); sessions
and sockets are opened 50 at a time before any timing starts.

Phases, identical for both targets; every phase starts at the same instant in all workers
and only counts what happens after a warm-up (`--warmup`, default 2 s):

(a) throughput: every socket runs a closed loop for `--duration` s (default 10): send
    `{"type": "message", "client_id": <unique>, "text": "bench message <n>"}`, wait for the
    ack carrying that client_id, repeat. msgs_per_s = acks received in the window / duration.
    For the hub an ack means the message is durably stored (protocol contract).
(b) latency: open loop at a fixed offered load of `--latency-rate` msgs/s in total (default
    1,000/s: each socket one message every sockets/rate seconds, first send at a random
    offset within that interval), never waiting for acks. The latency of a message is
    ack receipt time minus its *scheduled* send time (so a client or server falling
    behind shows up as latency rather than as a lower offered load); p50/p99/max are
    nearest-rank over the messages scheduled inside the window.

After each phase the clients wait for the acks still outstanding: as long as acks keep
arriving (a server working off a backlog), up to 300 s; once none arrived for 10 s the
rest count as an error ("unanswered"). A `rate_limited` refusal (the hub's per-socket flood
guard) is treated as the protocol intends: the same client_id is resent after 50 ms, the
latency keeps running from the first send, and the refusals are reported, not errors.

Result: msgs_per_s from (a), p50/p99 from (b), ratio = hub msgs_per_s / echo msgs_per_s.
Targets (SQLite): ratio >= 0.30 and hub p99 <= 50 ms.

Correctness. After the hub run, up to `--verify-sample` (default 20) random tokens are read
back with `GET /api/webchat/history`: every acked client_id must be there once, as a
customer message with the acked message_id and the sent text, and the number of stored
messages must lie between the acks and the acks plus the unanswered sends of that socket.
Any acked message missing from the history makes the run fail.

Output: a human-readable table, then exactly one JSON line as the last line of stdout.
Exit status: 0 when the run was clean (whether or not the targets were met), 1 on errors
(refused frames, unanswered messages, failed connections, a server failing) or lost messages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import aiohttp
import servers
from benchlib import in_scratch_dir, log, percentile, raise_nofile_limit
from loadgen import (
    FinishCommand,
    FinishReport,
    PhaseCommand,
    PhaseKind,
    PhaseResult,
    SetupReport,
    SocketSample,
    WorkerConfig,
    WorkerCrash,
    worker_main,
)

TARGET_RATIO = 0.30
TARGET_P99_MS = 50.0
STALL_TIMEOUT_S = 10.0  # after a phase, stop waiting for acks once none came for this long
DRAIN_CAP_S = 300.0  # … and in any case after this long (a safety net)
PHASE_LEAD_S = 1.0  # phases start this long after the command is sent
SETUP_CONCURRENCY = 50


class BenchError(RuntimeError):
    """The benchmark could not run (a worker crashed or hung)."""


@dataclass(frozen=True)
class Settings:
    """The resolved command line."""

    sockets: int
    duration: float
    warmup: float
    latency_rate: float
    client_procs: int
    hub_url: str | None
    skip_echo: bool
    skip_hub: bool
    verify_sample: int
    seed: int


@dataclass
class TargetResult:
    """Everything measured against one server."""

    name: str
    sockets: int
    connected: int = 0
    msgs_per_s: float | None = None
    closed_p50_ms: float | None = None
    closed_p99_ms: float | None = None
    achieved_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    acked_total: int = 0
    rate_limited: int = 0
    drain_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    other_frames: Counter[str] = field(default_factory=Counter)
    samples: list[SocketSample] = field(default_factory=list)


@dataclass
class VerifyResult:
    """Outcome of reading acked messages back from the hub's history."""

    tokens: int = 0
    acked_checked: int = 0
    missing: int = 0
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> Settings:
    """Parse the command line; `--quick` lowers the defaults the user did not set."""
    parser = argparse.ArgumentParser(
        description="Benchmark the hub's web chat against a bare aiohttp websocket echo server."
    )
    parser.add_argument("--sockets", type=int, help="concurrent customer websockets (1000)")
    parser.add_argument("--duration", type=float, help="seconds measured per phase (10)")
    parser.add_argument("--warmup", type=float, help="seconds before measuring (2)")
    parser.add_argument(
        "--latency-rate", type=float, default=1000.0, help="offered msgs/s in the latency phase"
    )
    parser.add_argument("--client-procs", type=int, default=1, help="client worker processes")
    parser.add_argument("--hub-url", help="bench this running hub instead of starting one")
    parser.add_argument("--skip-echo", action="store_true", help="do not measure the baseline")
    parser.add_argument("--skip-hub", action="store_true", help="only measure the echo baseline")
    parser.add_argument("--verify-sample", type=int, default=20, help="tokens to read back")
    parser.add_argument("--seed", type=int, default=1, help="seed for send offsets and samples")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 sockets, 3 s")
    args = parser.parse_args(argv)
    if args.skip_echo and args.skip_hub:
        parser.error("--skip-echo and --skip-hub leave nothing to measure")
    settings = Settings(
        sockets=args.sockets or (100 if args.quick else 1000),
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0),
        latency_rate=args.latency_rate,
        client_procs=max(1, min(args.client_procs, args.sockets or 1000)),
        hub_url=args.hub_url,
        skip_echo=args.skip_echo,
        skip_hub=args.skip_hub,
        verify_sample=args.verify_sample,
        seed=args.seed,
    )
    if settings.sockets < 1 or settings.duration <= 0 or settings.latency_rate <= 0:
        parser.error("--sockets, --duration and --latency-rate must be positive")
    return settings


# --------------------------------------------------------------------------- client workers


def split(total: int, parts: int) -> list[int]:
    """Split `total` sockets into `parts` shares differing by at most one."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class WorkerPool:
    """The client worker processes of one target, driven over pipes."""

    def __init__(self, base_url: str, create_sessions: bool, settings: Settings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[BaseProcess] = []
        for worker_id, share in enumerate(split(settings.sockets, settings.client_procs)):
            cfg = WorkerConfig(
                worker_id=worker_id,
                base_url=base_url,
                sockets=share,
                create_sessions=create_sessions,
                setup_concurrency=SETUP_CONCURRENCY,
                seed=settings.seed * 1000 + worker_id,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_main, args=(child, cfg), name=f"bench-client-{worker_id}"
            )
            proc.daemon = True
            proc.start()
            child.close()
            self.pipes.append(parent)
            self.procs.append(proc)

    def broadcast(self, command: PhaseCommand | FinishCommand) -> None:
        """Send the same command to every worker."""
        for pipe in self.pipes:
            pipe.send(command)

    def gather(self, timeout: float) -> list[Any]:
        """One reply from every worker within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        replies = []
        for pipe, proc in zip(self.pipes, self.procs, strict=True):
            while not pipe.poll(0.2):
                if not proc.is_alive():
                    raise BenchError(f"{proc.name} exited (code {proc.exitcode}) without a reply")
                if time.monotonic() > deadline:
                    raise BenchError(f"{proc.name} did not reply within {timeout:.0f} s")
            reply = pipe.recv()
            if isinstance(reply, WorkerCrash):
                raise BenchError(f"client worker {reply.worker_id} crashed:\n{reply.traceback}")
            replies.append(reply)
        return replies

    def close(self) -> None:
        """Wait briefly for the workers to exit, then terminate any that are left."""
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for pipe in self.pipes:
            pipe.close()


@contextmanager
def worker_pool(base_url: str, create_sessions: bool, settings: Settings) -> Iterator[WorkerPool]:
    """A WorkerPool that is always cleaned up."""
    pool = WorkerPool(base_url, create_sessions, settings)
    try:
        yield pool
    finally:
        pool.close()


# --------------------------------------------------------------------------- measuring


def ms(seconds: float | None) -> float | None:
    """Seconds to milliseconds (None stays None)."""
    return None if seconds is None else seconds * 1000.0


def run_phase(pool: WorkerPool, kind: PhaseKind, settings: Settings) -> list[PhaseResult]:
    """Run one phase in all workers at the same instant and collect the results."""
    interval = settings.sockets / settings.latency_rate
    command = PhaseCommand(
        kind=kind,
        start_at=time.time() + PHASE_LEAD_S,
        warmup=settings.warmup,
        duration=settings.duration,
        interval=interval,
        stall_timeout=STALL_TIMEOUT_S,
        drain_cap=DRAIN_CAP_S,
    )
    pool.broadcast(command)
    timeout = PHASE_LEAD_S + settings.warmup + settings.duration + 2 * DRAIN_CAP_S + 60
    results: list[PhaseResult] = pool.gather(timeout)
    return results


def merge_errors(target: TargetResult, results: list[PhaseResult]) -> None:
    """Add the per-message failures of a phase to the target's error counts."""
    for result in results:
        target.rate_limited += result.rate_limited
        target.drain_s = max(target.drain_s, result.drain_s)
        target.errors.update(result.errors)
        if result.unanswered:
            target.errors["unanswered"] += result.unanswered


def apply_closed(target: TargetResult, results: list[PhaseResult], settings: Settings) -> None:
    """Throughput (and, for information, closed-loop latency) from phase (a)."""
    acked = sum(r.acked_in_window for r in results)
    target.msgs_per_s = acked / settings.duration
    latencies = sorted(x for r in results for x in r.latencies)
    target.closed_p50_ms = ms(percentile(latencies, 50))
    target.closed_p99_ms = ms(percentile(latencies, 99))
    merge_errors(target, results)


def apply_open(target: TargetResult, results: list[PhaseResult], settings: Settings) -> None:
    """Latency percentiles at the fixed offered load of phase (b)."""
    target.achieved_rate = sum(r.acked_in_window for r in results) / settings.duration
    latencies = sorted(x for r in results for x in r.latencies)
    target.p50_ms = ms(percentile(latencies, 50))
    target.p99_ms = ms(percentile(latencies, 99))
    target.max_ms = ms(latencies[-1]) if latencies else None
    merge_errors(target, results)


def apply_setup(target: TargetResult, reports: list[SetupReport]) -> None:
    """Count opened sockets and setup failures."""
    target.connected = sum(r.connected for r in reports)
    for report in reports:
        for name, count in report.failures.items():
            target.errors[f"setup:{name}"] += count
        if report.first_error:
            log(f"{target.name}: worker {report.worker_id} setup error: {report.first_error}")


def apply_finish(target: TargetResult, reports: list[FinishReport]) -> None:
    """Lifetime counters and the verification sample."""
    for report in reports:
        target.acked_total += report.acked_total
        target.other_frames.update(report.other_frames)
        target.samples.extend(report.samples)
        for name, count in (
            ("duplicate_ack", report.duplicate_acks),
            ("unknown_ack", report.unknown_acks),
            ("socket_closed", report.unexpected_closes),
        ):
            if count:
                target.errors[name] += count


def run_target(name: str, base_url: str, create_sessions: bool, settings: Settings) -> TargetResult:
    """Open the sockets, run both phases and close, against one server."""
    target = TargetResult(name=name, sockets=settings.sockets)
    with worker_pool(base_url, create_sessions, settings) as pool:
        log(f"{name}: opening {settings.sockets} sockets in {settings.client_procs} process(es)")
        apply_setup(target, pool.gather(timeout=120 + settings.sockets / 10))
        log(f"{name}: {target.connected} connected; throughput phase (closed loop)")
        apply_closed(target, run_phase(pool, "closed", settings), settings)
        log(
            f"{name}: {fmt(target.msgs_per_s)} msgs/s; latency phase at {settings.latency_rate:g}/s"
        )
        apply_open(target, run_phase(pool, "open", settings), settings)
        log(f"{name}: p50 {fmt(target.p50_ms)} ms, p99 {fmt(target.p99_ms)} ms")
        sample_per_worker = -(-settings.verify_sample // settings.client_procs)
        pool.broadcast(FinishCommand(sample=sample_per_worker))
        apply_finish(target, pool.gather(timeout=60))
    return target


# --------------------------------------------------------------------------- verification


def expected_text(client_id: str) -> str:
    """The text the load generator sent with `client_id` (`…n<seq>` -> `bench message <seq>`)."""
    return f"bench message {client_id.rsplit('n', 1)[1]}"


def check_history(sample: SocketSample, messages: list[dict[str, Any]]) -> tuple[int, list[str]]:
    """Compare one socket's acks with its stored history; (missing count, problems)."""
    stored = [m for m in messages if m.get("author") == "customer" and m.get("client_id")]
    counts = Counter(str(m["client_id"]) for m in stored)
    by_client_id = {str(m["client_id"]): m for m in stored}
    problems = [f"client_id {cid} stored {n} times" for cid, n in counts.items() if n > 1]
    missing = 0
    for client_id, message_id in sample.acked.items():
        message = by_client_id.get(client_id)
        if message is None:
            missing += 1
            problems.append(f"acked {client_id} (message_id {message_id}) is not in the history")
        elif message.get("message_id") != message_id or message.get("text") != expected_text(
            client_id
        ):
            problems.append(f"acked {client_id} -> {message_id} but history has {message}")
    low, high = len(sample.acked), len(sample.acked) + sample.unanswered
    if not low <= len(stored) <= high:
        problems.append(
            f"{len(stored)} customer messages stored, {low} acked (+{sample.unanswered} unanswered)"
        )
    return missing, problems


async def fetch_history(session: aiohttp.ClientSession, base_url: str, token: str) -> Any:
    """GET /api/webchat/history for one token."""
    url = f"{base_url}/api/webchat/history"
    async with session.get(url, params={"token": token}) as response:
        body = await response.json(content_type=None)
        if response.status != 200:
            raise BenchError(f"GET /api/webchat/history -> {response.status}: {body}")
        return body


async def verify_history(base_url: str, samples: list[SocketSample]) -> VerifyResult:
    """Read the sampled sockets' conversations back and check every ack is stored."""
    result = VerifyResult()
    async with aiohttp.ClientSession() as session:
        for sample in samples:
            body = await fetch_history(session, base_url, sample.token)
            messages = body.get("messages") if isinstance(body, dict) else None
            if not isinstance(messages, list):
                result.problems.append(f"history without a messages list: {body}")
                continue
            missing, problems = check_history(sample, messages)
            result.tokens += 1
            result.acked_checked += len(sample.acked)
            result.missing += missing
            result.problems.extend(f"token …{sample.token[-6:]}: {p}" for p in problems)
    return result


# --------------------------------------------------------------------------- targets


def bench_echo(settings: Settings, workdir: Path) -> TargetResult:
    """Start the echo server, measure it, stop it."""
    server = servers.start_echo(sys.executable, workdir)
    try:
        return run_target("echo", server.base_url, False, settings)
    finally:
        server.stop()


def bench_hub(settings: Settings, workdir: Path) -> tuple[TargetResult, VerifyResult, list[str]]:
    """Start (or attach to) the hub, measure it, verify durability, stop it."""
    if settings.hub_url:
        server = servers.external("hub", settings.hub_url)
    else:
        log("hub: starting `python -m hub serve`")
        server = servers.start_hub(sys.executable, workdir)
    failures: list[str] = []
    try:
        target = run_target("hub", server.base_url, True, settings)
        log(f"hub: verifying {len(target.samples)} sampled conversations via /api/webchat/history")
        verify = asyncio.run(verify_history(server.base_url, target.samples))
        if not server.alive():
            failures.append("the hub exited during the benchmark")
    except BenchError as exc:
        raise BenchError(f"{exc}\nhub log tail:\n{server.log_tail()}") from exc
    finally:
        code = server.stop()
    if code not in (None, 0, -15):
        failures.append(f"the hub exited with code {code} on SIGTERM")
    if failures:
        failures.append(f"hub log tail:\n{server.log_tail()}")
    return target, verify, failures


# --------------------------------------------------------------------------- report


def fmt(value: float | None, digits: int = 1) -> str:
    """A figure for the table ('-' when not measured)."""
    return "-" if value is None else f"{value:,.{digits}f}"


def describe(counts: Counter[str]) -> str:
    """`none` or `code=n, …`."""
    return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"


def ratio_of(hub: TargetResult | None, echo: TargetResult | None) -> float | None:
    """hub msgs_per_s / echo msgs_per_s when both were measured."""
    if hub is None or echo is None or not hub.msgs_per_s or not echo.msgs_per_s:
        return None
    return hub.msgs_per_s / echo.msgs_per_s


def print_report(
    settings: Settings,
    hub: TargetResult | None,
    echo: TargetResult | None,
    verify: VerifyResult | None,
    load_at_start: float,
) -> None:
    """The human-readable table (stdout); a high load means other work shared the CPUs."""
    targets = [t for t in (hub, echo) if t is not None]
    rows: list[tuple[str, list[str]]] = [
        ("sockets connected", [f"{t.connected}/{t.sockets}" for t in targets]),
        ("throughput, closed loop (msgs/s)", [fmt(t.msgs_per_s) for t in targets]),
        (
            "  closed-loop ack p50 / p99 (ms)",
            [f"{fmt(t.closed_p50_ms)} / {fmt(t.closed_p99_ms)}" for t in targets],
        ),
        ("latency phase offered (msgs/s)", [fmt(settings.latency_rate) for _ in targets]),
        ("  achieved (msgs/s)", [fmt(t.achieved_rate) for t in targets]),
        ("  ack p50 (ms)", [fmt(t.p50_ms, 2) for t in targets]),
        ("  ack p99 (ms)", [fmt(t.p99_ms, 2) for t in targets]),
        ("  ack max (ms)", [fmt(t.max_ms, 2) for t in targets]),
        ("acks received (both phases)", [f"{t.acked_total:,}" for t in targets]),
        ("rate_limited refusals (resent)", [f"{t.rate_limited:,}" for t in targets]),
        ("longest wait for late acks (s)", [fmt(t.drain_s) for t in targets]),
        ("errors", [describe(t.errors) for t in targets]),
        ("other frames received", [describe(t.other_frames) for t in targets]),
    ]
    print()
    print(
        f"omnihub web chat benchmark — {settings.sockets} sockets, {settings.client_procs} client "
        f"process(es), {settings.warmup:g} s warm-up + {settings.duration:g} s per phase, "
        f"{os.cpu_count()} CPUs (1-min load average {load_at_start:.2f} before the run), "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )
    print(f"{'':36}" + "".join(f"{t.name:>22}" for t in targets))
    for label, cells in rows:
        print(f"{label:36}" + "".join(f"{c:>22}" for c in cells))
    if verify is not None:
        print(
            f"durability check: {verify.tokens} conversations, {verify.acked_checked} acked "
            f"messages read back, {verify.missing} missing, {len(verify.problems)} problem(s)"
        )
    ratio = ratio_of(hub, echo)
    p99 = hub.p99_ms if hub else None
    print(
        f"ratio hub/echo: {fmt(ratio, 3)} (target >= {TARGET_RATIO:.2f}); "
        f"hub p99: {fmt(p99, 2)} ms (target <= {TARGET_P99_MS:g} ms); "
        f"targets {'met' if targets_met(hub, echo) else 'NOT met'}"
    )


def targets_met(hub: TargetResult | None, echo: TargetResult | None) -> bool:
    """Both targets reached (needs both targets measured)."""
    ratio = ratio_of(hub, echo)
    return (
        ratio is not None
        and ratio >= TARGET_RATIO
        and hub is not None
        and hub.p99_ms is not None
        and hub.p99_ms <= TARGET_P99_MS
    )


def rounded(value: float | None, digits: int) -> float | None:
    """Round for the JSON line, keeping None."""
    return None if value is None else round(value, digits)


def summary(settings: Settings, hub: TargetResult | None, echo: TargetResult | None) -> str:
    """The final JSON line."""
    return json.dumps(
        {
            "bench": "webchat",
            "sockets": settings.sockets,
            "msgs_per_s": rounded(hub.msgs_per_s if hub else None, 1),
            "p50_ms": rounded(hub.p50_ms if hub else None, 2),
            "p99_ms": rounded(hub.p99_ms if hub else None, 2),
            "echo_msgs_per_s": rounded(echo.msgs_per_s if echo else None, 1),
            "echo_p99_ms": rounded(echo.p99_ms if echo else None, 2),
            "ratio": rounded(ratio_of(hub, echo), 3),
            "target_ratio": TARGET_RATIO,
            "target_p99_ms": TARGET_P99_MS,
            "met": targets_met(hub, echo),
        }
    )


def failures_of(
    settings: Settings, targets: list[TargetResult], verify: VerifyResult | None
) -> list[str]:
    """Everything that makes this run an error (exit status 1)."""
    failures = [f"{t.name}: errors {describe(t.errors)}" for t in targets if t.errors] + [
        f"{t.name}: only {t.connected}/{t.sockets} sockets connected"
        for t in targets
        if t.connected < t.sockets
    ]
    if verify is not None:
        if verify.missing:
            failures.append(f"hub: {verify.missing} acked message(s) missing from the history")
        failures.extend(verify.problems[:20])
        if settings.verify_sample > 0 and verify.tokens == 0:
            failures.append("hub: no conversation could be verified")
    return failures


# --------------------------------------------------------------------------- main


def run(settings: Settings, workdir: Path) -> int:
    """Measure the selected targets, print the report and the JSON line; the exit status."""
    load_at_start = os.getloadavg()[0]
    echo = hub = None
    verify = None
    failures: list[str] = []
    try:
        if not settings.skip_echo:
            echo = bench_echo(settings, workdir)
        if not settings.skip_hub:
            hub, verify, failures = bench_hub(settings, workdir)
    except (BenchError, servers.ServerError) as exc:
        failures.append(str(exc))
    targets = [t for t in (hub, echo) if t is not None]
    failures += failures_of(settings, targets, verify)
    print_report(settings, hub, echo, verify, load_at_start)
    for failure in failures:
        print(f"FAILURE: {failure}", file=sys.stderr)
    print(summary(settings, hub, echo), flush=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    settings = parse_args(argv)
    raise_nofile_limit()
    return in_scratch_dir("omnihub-bench-", lambda workdir: run(settings, workdir))


if __name__ == "__main__":
    sys.exit(main())
