"""Group-committed batches in a child process: the hub's SQL work gets a GIL of its own.

Why: on CPython the event loop and the storage thread share one interpreter lock, and under a
full inbound load the SQL side of a batch (binding parameters, reading rows back, building the
domain values and event payloads) takes more than half of the hub's CPU per message. In a
child process it runs on the other core while the loop keeps serving sockets.

Batches are pipelined: the store hands one over (`submit`) while the child is still
committing the previous one, so the child goes straight from one commit to the next instead
of idling while the hub reads the results and gathers the next batch. The child takes them
one at a time, in order, so there is still one writer lane: batches commit in the order they
were formed, and the store drains the pipe (`drain`) before a write of its own, so the child
never competes with it for SQLite's lock. A thread of the hub reads the results back.

The child is started from a fork server (a clean process without the hub's threads); it exits
when the hub asks it to, or on its own when the pipe breaks because the hub died, so it never
outlives the hub.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import logging
import multiprocessing
import operator
import pickle
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from typing import Any

from hub import heap
from hub.errors import Unavailable
from hub.storage.batches import BatchFn, Outcome, run_batch
from hub.storage.engine import create_engine_for
from hub.storage.uow import ConversationCache

log = logging.getLogger(__name__)

_STOP = None  # sent instead of a batch: finish and exit
_JOIN_TIMEOUT_S = 10.0


class WriterProcessDied(Unavailable):
    """The child stopped mid-batch: the batch's items are not known to be stored, so nobody
    is told they are; a resend is safe (inbound messages are idempotent) and starts a new child."""

    code = "storage_unavailable"


def _fields_getter(cls: type) -> Callable[[Any], tuple[Any, ...]] | None:
    """For a slotted dataclass built from all of its fields in order: its field values."""
    if not (dataclasses.is_dataclass(cls) and "__slots__" in vars(cls)):
        return None
    fields = dataclasses.fields(cls)
    if not all(f.init and not f.kw_only for f in fields):
        return None
    names = [f.name for f in fields]
    if len(names) == 1:
        name = names[0]
        return lambda obj: (getattr(obj, name),)
    return operator.attrgetter(*names)


# Per class: how to take its values apart (None: pickle's own way). Built on first sight.
_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]] | None] = {}


class _Pickler(pickle.Pickler):
    """Pickles slotted dataclasses (the domain values) as a call of the class on its values.

    The default for a frozen slotted dataclass restores it through `dataclasses.fields()` per
    object, which made unpickling a batch's results one of the hub's larger costs per message;
    here one `attrgetter` per class takes the values apart.
    """

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        try:
            getter = _GETTERS[cls]
        except KeyError:
            getter = _GETTERS[cls] = _fields_getter(cls)
        if getter is None:
            return NotImplemented
        return cls, getter(obj)


def _send(conn: Connection, obj: Any) -> None:
    buffer = io.BytesIO()
    _Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
    conn.send_bytes(buffer.getbuffer())


def _recv(conn: Connection) -> Any:
    return pickle.loads(conn.recv_bytes())


def _portable(outcome: Outcome) -> Outcome:
    """An outcome that survives pickling back to the hub (some driver errors do not)."""
    if outcome.error is not None:
        try:
            pickle.dumps(outcome.error)
        except Exception:
            error = outcome.error
            outcome.error = RuntimeError(f"{type(error).__name__}: {error}")
    return outcome


def _child_main(conn: Connection, url: str, log_level: int) -> None:
    # Ctrl-C reaches the whole process group; the hub decides when this process stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s[writer]: %(message)s"
    )
    engine = create_engine_for(url, pool_size=1)
    heap.settle()
    cache = ConversationCache()  # this process's batches keep touching the same conversations
    try:
        while True:
            try:
                batch = _recv(conn)
            except EOFError:  # the hub is gone
                return
            if batch is _STOP:
                return
            outcomes = run_batch(engine, batch, cache)
            _send(conn, [_portable(o) for o in outcomes])
    finally:
        engine.dispose()


@dataclasses.dataclass
class _Child:
    conn: Connection
    process: multiprocessing.process.BaseProcess
    # Batches sent and not yet answered, oldest first: the child answers in order.
    inflight: collections.deque[Future[list[Outcome]]] = dataclasses.field(
        default_factory=collections.deque
    )


def _died(cause: BaseException | None = None) -> WriterProcessDied:
    exc = WriterProcessDied("the storage writer process stopped mid-batch")
    exc.__cause__ = cause
    return exc


class WriterProcess:
    """A child process that runs `run_batch` against its own engine on the same database."""

    def __init__(self, url: str):
        self._url = url
        self._child: _Child | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child if it is not running (blocking; idempotent)."""
        with self._lock:
            self._running()

    def submit(self, batch: list[tuple[BatchFn, Any]]) -> Future[list[Outcome]]:
        """Send `batch` to the child (blocking only while it is written to the pipe).

        The future resolves once the batch's commit is done, with
        `hub.storage.batches.run_batch`'s outcomes, or fails with `WriterProcessDied`.
        """
        future: Future[list[Outcome]] = Future()
        with self._lock:
            child = self._running()
            try:
                _send(child.conn, batch)
            except OSError as exc:
                future.set_exception(_died(exc))
            else:
                child.inflight.append(future)
        return future

    def drain(self) -> None:
        """Wait until every batch sent so far is answered (blocking)."""
        with self._lock:
            last = self._child.inflight[-1] if self._child and self._child.inflight else None
        if last is not None:
            last.exception()  # only waits: an error is for the batch's submitter to report

    def close(self) -> None:
        """Ask the child to finish and wait for it (blocking)."""
        self.drain()
        with self._lock:
            child, self._child = self._child, None
            if child is None:
                return
            try:
                _send(child.conn, _STOP)
            except OSError:
                pass
        child.process.join(_JOIN_TIMEOUT_S)
        if child.process.is_alive():
            log.warning("storage writer process did not stop; terminating it")
            child.process.terminate()
            child.process.join(_JOIN_TIMEOUT_S)

    def _running(self) -> _Child:
        """The live child, started if need be; call with the lock held."""
        if self._child is not None and self._child.process.is_alive():
            return self._child
        ctx = multiprocessing.get_context("forkserver")
        # Imported once in the fork server, so each child starts in milliseconds.
        ctx.set_forkserver_preload([__name__])
        ours, theirs = ctx.Pipe()
        process = ctx.Process(
            target=_child_main,
            args=(theirs, self._url, logging.getLogger().getEffectiveLevel()),
            name="omnihub-db-writer",
            daemon=True,
        )
        process.start()
        theirs.close()
        self._child = _Child(ours, process)
        threading.Thread(
            target=self._read_results, args=(self._child,), name="omnihub-db-results", daemon=True
        ).start()
        return self._child

    def _read_results(self, child: _Child) -> None:
        """Resolve one child's batches in order; when it is gone, fail what it left."""
        while True:
            try:
                outcomes: list[Outcome] = _recv(child.conn)
            except (EOFError, OSError):
                break
            with self._lock:
                future = child.inflight.popleft()
            future.set_result(outcomes)
        with self._lock:
            died = self._child is child  # else `close` asked it to stop and joins it
            if died:
                self._child = None
            lost = list(child.inflight)
            child.inflight.clear()
        for future in lost:
            future.set_exception(_died())
        if died:
            child.process.join(1)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(1)
        child.conn.close()
