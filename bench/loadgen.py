"""Client side of bench/webchat.py: one worker process driving its share of the websockets.

The orchestrator starts each worker with `multiprocessing` (spawn) and talks to it over a
pipe: the worker opens its sockets and reports a `SetupReport`, then runs each
`PhaseCommand` it receives and answers a `PhaseResult`, and on `FinishCommand` closes
everything and answers a `FinishReport` (including a sample of what the server acked, for
the hub's durability check). All sockets of a worker share one `aiohttp.ClientSession`
whose connector has no connection limit.

Timing uses the event loop's monotonic clock. Phases start at a wall-clock instant chosen by
the orchestrator so every worker starts together.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Literal

import aiohttp
from benchlib import raise_nofile_limit

PhaseKind = Literal["closed", "open"]
RESEND_DELAY_S = 0.05  # back-off before resending a message refused with `rate_limited`


@dataclass(frozen=True)
class WorkerConfig:
    """What one worker does before the first phase."""

    worker_id: int
    base_url: str
    sockets: int
    create_sessions: bool  # hub: POST /api/webchat/sessions per socket; echo: dummy tokens
    setup_concurrency: int
    seed: int


@dataclass
class SetupReport:
    """Sockets opened by one worker, and what failed on the way."""

    worker_id: int
    connected: int
    failures: Counter[str] = field(default_factory=Counter)
    first_error: str | None = None


@dataclass(frozen=True)
class PhaseCommand:
    """Run one measured phase.

    closed: each socket sends, waits for the ack, sends again, until the phase ends.
    open: each socket sends every `interval` seconds from a random offset, without waiting.
    Acks and latencies count only inside [start + warmup, start + warmup + duration).
    """

    kind: PhaseKind
    start_at: float  # wall clock (time.time())
    warmup: float
    duration: float
    interval: float
    stall_timeout: float  # after the phase: give up once no ack arrived for this long
    drain_cap: float  # after the phase: give up after this long in any case


@dataclass
class PhaseResult:
    """What one worker measured in one phase."""

    worker_id: int
    kind: PhaseKind
    sent: int = 0
    acked_in_window: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds
    errors: Counter[str] = field(default_factory=Counter)
    unanswered: int = 0  # neither acked nor refused when the drain gave up
    rate_limited: int = 0  # `rate_limited` refusals, each resent after RESEND_DELAY_S
    drain_s: float = 0.0  # how long the outstanding acks took to arrive after the phase


@dataclass(frozen=True)
class FinishCommand:
    """Close all sockets and report; `sample` sockets' acks are returned for verification."""

    sample: int


@dataclass(frozen=True)
class SocketSample:
    """Everything one socket got acked: client_id -> message_id, for the history check."""

    token: str
    acked: dict[str, int]
    unanswered: int  # sent without an ack (timed out or refused): may or may not be stored


@dataclass
class FinishReport:
    """Totals over the worker's lifetime and the verification sample."""

    worker_id: int
    acked_total: int
    duplicate_acks: int
    unknown_acks: int
    unexpected_closes: int
    other_frames: Counter[str]
    samples: list[SocketSample]


@dataclass(frozen=True)
class WorkerCrash:
    """The worker failed; the traceback is for the operator."""

    worker_id: int
    traceback: str


class Recorder:
    """Counts the acks of one phase and the latencies of messages sent inside its window."""

    def __init__(self, result: PhaseResult, window_start: float, window_end: float) -> None:
        self.result = result
        self.window_start = window_start
        self.window_end = window_end

    def on_ack(self, sent_at: float, now: float) -> None:
        """Record one ack received at `now` for a message (intended to be) sent at `sent_at`."""
        if self.window_start <= now < self.window_end:
            self.result.acked_in_window += 1
        if self.window_start <= sent_at < self.window_end:
            self.result.latencies.append(now - sent_at)


@dataclass
class WorkerStats:
    """Counters that live across phases."""

    recorder: Recorder | None = None
    duplicate_acks: int = 0
    unknown_acks: int = 0
    unexpected_closes: int = 0
    other_frames: Counter[str] = field(default_factory=Counter)
    closing: bool = False
    in_flight: int = 0  # messages sent and neither acked nor refused yet, over all sockets
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set while in_flight == 0
    last_settled: float = 0.0  # loop time of the latest ack or refusal
    resends: set[asyncio.Task[None]] = field(default_factory=set)

    def sent(self) -> None:
        """One more message in flight."""
        self.in_flight += 1
        self.idle.clear()
        if self.recorder is not None:
            self.recorder.result.sent += 1

    def settled(self, count: int = 1) -> None:
        """`count` messages are no longer in flight."""
        self.last_settled = asyncio.get_running_loop().time()
        self.in_flight -= count
        if self.in_flight <= 0:
            self.in_flight = 0
            self.idle.set()

    def error(self, code: str) -> None:
        """Count a refused frame (or another per-message failure) in the current phase."""
        if self.recorder is not None:
            self.recorder.result.errors[code] += 1


class Conn:
    """One customer websocket: sends message frames, matches acks to what is in flight."""

    def __init__(
        self, prefix: str, token: str, ws: aiohttp.ClientWebSocketResponse, stats: WorkerStats
    ) -> None:
        self.prefix = prefix
        self.token = token
        self.ws = ws
        self.stats = stats
        self.seq = 0
        self.pending: dict[str, float] = {}  # client_id -> (intended) send time
        self.acked: dict[str, int] = {}  # client_id -> message_id
        self.unanswered = 0
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    async def send(self, sent_at: float) -> None:
        """Send the next message frame; `sent_at` is the time its latency is measured from."""
        self.seq += 1
        client_id = f"{self.prefix}n{self.seq}"
        self.pending[client_id] = sent_at
        self.stats.sent()
        await self._transmit(client_id)

    async def resend(self, client_id: str) -> None:
        """Send a refused message again, same client_id (as a widget does after rate_limited)."""
        await asyncio.sleep(RESEND_DELAY_S)
        if client_id in self.pending and not self.closed:
            await self._transmit(client_id)

    async def _transmit(self, client_id: str) -> None:
        seq = client_id.rsplit("n", 1)[1]
        frame = {"type": "message", "client_id": client_id, "text": f"bench message {seq}"}
        try:
            await self.ws.send_str(json.dumps(frame))
        except (ConnectionError, RuntimeError):
            self._mark_closed()

    async def read_loop(self) -> None:
        """Dispatch every frame the server sends until the socket closes."""
        loop = asyncio.get_running_loop()
        while True:
            msg = await self.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                break
            now = loop.time()
            try:
                frame = json.loads(msg.data)
            except ValueError:
                self.stats.other_frames["invalid_json"] += 1
                continue
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "ack":
                self._on_ack(frame, now)
            elif kind == "error":
                self._on_error(frame)
            else:
                self.stats.other_frames[str(kind)] += 1
        self._mark_closed()

    def abandon_pending(self) -> int:
        """Give up on the messages still in flight; return how many there were."""
        count = len(self.pending)
        self.unanswered += count
        self.pending.clear()
        self.stats.settled(count)
        return count

    def _on_ack(self, frame: dict[str, object], now: float) -> None:
        client_id = str(frame.get("client_id"))
        message_id = frame.get("message_id")
        sent_at = self.pending.pop(client_id, None)
        if sent_at is None:
            if client_id in self.acked:
                self.stats.duplicate_acks += 1
            else:
                self.stats.unknown_acks += 1
            return
        self.stats.settled()
        self.acked[client_id] = message_id if isinstance(message_id, int) else -1
        if self.stats.recorder is not None:
            self.stats.recorder.on_ack(sent_at, now)
        self._wake()

    def _on_error(self, frame: dict[str, object]) -> None:
        code = str(frame.get("code"))
        client_id = frame.get("client_id")
        if code == "rate_limited" and isinstance(client_id, str) and client_id in self.pending:
            self._schedule_resend(client_id)
            return
        self.stats.error(code)
        if isinstance(client_id, str) and self.pending.pop(client_id, None) is not None:
            self.stats.settled()
            self.unanswered += 1
            self._wake()

    def _schedule_resend(self, client_id: str) -> None:
        if self.stats.recorder is not None:
            self.stats.recorder.result.rate_limited += 1
        task = asyncio.create_task(self.resend(client_id))
        self.stats.resends.add(task)
        task.add_done_callback(self.stats.resends.discard)

    def _mark_closed(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.stats.closing:
                self.stats.unexpected_closes += 1
            lost = self.abandon_pending()  # a closed socket will not ack them any more
            if lost and self.stats.recorder is not None:
                self.stats.recorder.result.unanswered += lost
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def closed_loop(conn: Conn, end: float) -> None:
    """Send, await the ack (or refusal), repeat until `end`."""
    loop = asyncio.get_running_loop()
    while not conn.closed and loop.time() < end:
        conn.waiter = loop.create_future()
        await conn.send(loop.time())
        await conn.waiter


async def open_loop(conn: Conn, first: float, end: float, interval: float) -> None:
    """Send one message every `interval` s from `first` until `end`, never waiting for acks.

    Latency is measured from the intended send time, so a client that falls behind its
    schedule shows up as latency instead of silently lowering the offered load.
    """
    loop = asyncio.get_running_loop()
    due = first
    while due < end and not conn.closed:
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await conn.send(due)
        due += interval


async def drain(stats: WorkerStats, stall_timeout: float, cap: float) -> float:
    """Wait until no message is in flight; return the seconds waited.

    A server that is behind keeps acking its backlog, so the wait goes on while acks (or
    refusals) keep arriving, and stops once none came for `stall_timeout` s or after `cap` s.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    stats.last_settled = max(stats.last_settled, started)
    while not stats.idle.is_set():
        now = loop.time()
        timeout = min(stats.last_settled + stall_timeout, started + cap) - now
        if timeout <= 0:
            break
        try:
            await asyncio.wait_for(stats.idle.wait(), timeout)
        except TimeoutError:
            continue
    return loop.time() - started


async def run_phase(
    conns: list[Conn], stats: WorkerStats, cmd: PhaseCommand, worker_id: int, rng: random.Random
) -> PhaseResult:
    """Run one phase on every socket of this worker and collect its result."""
    loop = asyncio.get_running_loop()
    start = loop.time() + max(0.0, cmd.start_at - time.time())
    window_start = start + cmd.warmup
    end = window_start + cmd.duration
    result = PhaseResult(worker_id=worker_id, kind=cmd.kind)
    stats.recorder = Recorder(result, window_start, end)
    await asyncio.sleep(max(0.0, start - loop.time()))
    interval = cmd.interval
    if cmd.kind == "closed":
        tasks = [asyncio.create_task(closed_loop(c, end)) for c in conns]
    else:
        tasks = [
            asyncio.create_task(open_loop(c, start + rng.uniform(0, interval), end, interval))
            for c in conns
        ]
        # open-loop senders finish on their own once their schedule is through
        await asyncio.wait(tasks, timeout=max(0.0, end - loop.time()) + cmd.drain_cap)
    await asyncio.sleep(max(0.0, end - loop.time()))
    result.drain_s = await drain(stats, cmd.stall_timeout, cmd.drain_cap)
    for task in [*tasks, *stats.resends]:
        task.cancel()  # closed-loop senders still waiting for an ack that did not come
    await asyncio.gather(*tasks, *stats.resends, return_exceptions=True)
    result.unanswered += sum(c.abandon_pending() for c in conns)
    stats.recorder = None
    return result


async def create_token(session: aiohttp.ClientSession, base_url: str) -> str:
    """POST /api/webchat/sessions {} and return the new session token."""
    async with session.post(f"{base_url}/api/webchat/sessions", json={}) as response:
        body = await response.json(content_type=None)
        if response.status not in (200, 201) or not isinstance(body, dict):
            raise RuntimeError(f"POST /api/webchat/sessions -> {response.status}: {body}")
        token = body.get("token")
        if not isinstance(token, str):
            raise RuntimeError(f"POST /api/webchat/sessions: no token in {body}")
        return token


async def open_socket(
    session: aiohttp.ClientSession, cfg: WorkerConfig, index: int, stats: WorkerStats
) -> Conn:
    """Create the session (hub only) and open the websocket of socket `index`."""
    if cfg.create_sessions:
        token = await create_token(session, cfg.base_url)
    else:
        token = f"echo-{cfg.worker_id}-{index}"
    ws = await session.ws_connect(
        f"{cfg.base_url}/api/webchat/ws", params={"token": token}, heartbeat=None
    )
    return Conn(f"w{cfg.worker_id}s{index}", token, ws, stats)


async def open_sockets(
    session: aiohttp.ClientSession, cfg: WorkerConfig, stats: WorkerStats
) -> tuple[list[Conn], SetupReport]:
    """Open all sockets of this worker, `cfg.setup_concurrency` at a time (not timed)."""
    report = SetupReport(worker_id=cfg.worker_id, connected=0)
    gate = asyncio.Semaphore(cfg.setup_concurrency)

    async def one(index: int) -> Conn | None:
        async with gate:
            try:
                return await open_socket(session, cfg, index, stats)
            except (aiohttp.ClientError, RuntimeError, OSError, ValueError) as exc:
                report.failures[type(exc).__name__] += 1
                report.first_error = report.first_error or f"{type(exc).__name__}: {exc}"
                return None

    opened = await asyncio.gather(*(one(i) for i in range(cfg.sockets)))
    conns = [c for c in opened if c is not None]
    report.connected = len(conns)
    return conns, report


def pick_samples(conns: list[Conn], count: int, rng: random.Random) -> list[SocketSample]:
    """Up to `count` random sockets that got at least one ack."""
    candidates = [c for c in conns if c.acked]
    chosen = rng.sample(candidates, min(count, len(candidates)))
    return [SocketSample(c.token, dict(c.acked), c.unanswered) for c in chosen]


async def close_all(
    conns: list[Conn], readers: list[asyncio.Task[None]], stats: WorkerStats
) -> None:
    """Close every socket politely, then stop the readers."""
    stats.closing = True
    await asyncio.gather(*(c.ws.close() for c in conns), return_exceptions=True)
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)


async def recv_command(pipe: Connection) -> PhaseCommand | FinishCommand:
    """Wait for the orchestrator's next command without blocking the event loop."""
    command = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    if not isinstance(command, PhaseCommand | FinishCommand):
        raise TypeError(f"unexpected command {command!r}")
    return command


async def serve(pipe: Connection, cfg: WorkerConfig) -> None:
    """The worker's life: open sockets, run phases on command, close and report."""
    rng = random.Random(cfg.seed)
    stats = WorkerStats()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        conns, report = await open_sockets(session, cfg, stats)
        readers = [asyncio.create_task(c.read_loop()) for c in conns]
        pipe.send(report)
        while True:
            command = await recv_command(pipe)
            if isinstance(command, FinishCommand):
                break
            pipe.send(await run_phase(conns, stats, command, cfg.worker_id, rng))
        samples = pick_samples(conns, command.sample, rng)
        await close_all(conns, readers, stats)
    pipe.send(
        FinishReport(
            worker_id=cfg.worker_id,
            acked_total=sum(len(c.acked) for c in conns),
            duplicate_acks=stats.duplicate_acks,
            unknown_acks=stats.unknown_acks,
            unexpected_closes=stats.unexpected_closes,
            other_frames=stats.other_frames,
            samples=samples,
        )
    )


def worker_main(pipe: Connection, cfg: WorkerConfig) -> None:
    """Process entry point (spawned by the orchestrator)."""
    raise_nofile_limit()
    try:
        asyncio.run(serve(pipe, cfg))
    except BaseException:
        pipe.send(WorkerCrash(cfg.worker_id, traceback.format_exc()))
        raise
    finally:
        pipe.close()
