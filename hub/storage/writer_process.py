"""Group-committed batches in a child process: the hub's SQL work gets a GIL of its own.

Why: on CPython the event loop and the storage thread share one interpreter lock, and under a
full inbound load the SQL side of a batch (binding parameters, reading rows back, building the
domain values and event payloads) takes more than half of the hub's CPU per message. In a
child process it runs on the other core while the loop keeps serving sockets.

The store calls `WriterProcess.run_batch` from its single writer thread, so there is still one
writer lane: the child never competes with the store's own writes for SQLite's lock, and
batches commit in the order they were formed. The child is started from a fork server (a
clean process without the hub's threads); it exits when the hub asks it to, or on its own
when the pipe breaks because the hub died, so it never outlives the hub.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import multiprocessing
import pickle
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from hub.errors import Unavailable
from hub.storage.batches import BatchFn, Outcome, run_batch
from hub.storage.engine import create_engine_for

log = logging.getLogger(__name__)

_STOP = None  # sent instead of a batch: finish and exit
_JOIN_TIMEOUT_S = 10.0


class WriterProcessDied(Unavailable):
    """The child stopped mid-batch: the batch's items are not known to be stored, so nobody
    is told they are; a resend is safe (inbound messages are idempotent) and starts a new child."""

    code = "storage_unavailable"


def _rebuild(cls: type, values: tuple[Any, ...]) -> Any:
    return cls(*values)


class _Pickler(pickle.Pickler):
    """Pickles slotted dataclasses (the domain values) as their field values.

    The default for a frozen slotted dataclass restores it through `dataclasses.fields()` per
    object, which made unpickling a batch's results one of the hub's larger costs per message.
    """

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        slots = getattr(cls, "__slots__", None)
        if slots and dataclasses.is_dataclass(cls):
            return _rebuild, (cls, tuple([getattr(obj, name) for name in slots]))
        return NotImplemented


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
    try:
        while True:
            try:
                batch = _recv(conn)
            except EOFError:  # the hub is gone
                return
            if batch is _STOP:
                return
            outcomes = run_batch(engine, batch)
            _send(conn, [_portable(o) for o in outcomes])
    finally:
        engine.dispose()


class WriterProcess:
    """A child process that runs `run_batch` against its own engine on the same database."""

    def __init__(self, url: str):
        self._url = url
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the child if it is not running (blocking; idempotent)."""
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
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
            self._conn, self._process = ours, process

    def run_batch(self, batch: list[tuple[BatchFn, Any]]) -> list[Outcome]:
        """`hub.storage.batches.run_batch` in the child; blocks until its commit is done."""
        self.start()
        assert self._conn is not None
        try:
            _send(self._conn, batch)
            outcomes: list[Outcome] = _recv(self._conn)
        except (EOFError, OSError) as exc:
            self._discard()
            raise WriterProcessDied("the storage writer process stopped mid-batch") from exc
        return outcomes

    def close(self) -> None:
        """Ask the child to finish and wait for it (blocking)."""
        with self._lock:
            conn, process = self._conn, self._process
            self._conn = self._process = None
        if conn is None or process is None:
            return
        try:
            _send(conn, _STOP)
        except OSError:
            pass
        process.join(_JOIN_TIMEOUT_S)
        if process.is_alive():
            log.warning("storage writer process did not stop; terminating it")
            process.terminate()
            process.join(_JOIN_TIMEOUT_S)
        conn.close()

    def _discard(self) -> None:
        with self._lock:
            conn, process = self._conn, self._process
            self._conn = self._process = None
        if conn is not None:
            conn.close()
        if process is not None:
            process.join(1)
            if process.is_alive():
                process.kill()
