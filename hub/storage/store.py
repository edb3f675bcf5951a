"""`hub.ports.Store` on SQLAlchemy/SQLModel: units of work on threads, group commit.

SQL drivers block, so every unit of work runs on a thread pool, never on the event loop.
Writes go through one writer lane; SQLite admits a single writer anyway, and on PostgreSQL a
single lane keeps conversation updates ordered. `write_batched` lets concurrent inbound
messages share one transaction, a few statements and one fsync (group commit); if the batch
fails, it is rolled back and each item runs again in a transaction of its own, so one bad
message never takes the others down, and nobody hears "stored" before the commit that holds
their message is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.model import Event
from hub.storage.batches import BatchFn, Outcome, run_batch, run_one
from hub.storage.engine import create_engine_for, is_in_memory
from hub.storage.uow import SqlUnitOfWork
from hub.storage.writer_process import WriterProcess

log = logging.getLogger(__name__)
T = TypeVar("T")
ItemT = TypeVar("ItemT")
CommitHook = Callable[[Sequence[Event]], None]

MAX_BATCH = 256
# Batches in flight at once with a writer process: one committing, one waiting in the pipe.
PIPELINE_DEPTH = 2


@dataclass
class _Pending:
    fn: BatchFn
    item: Any
    future: asyncio.Future[Any]


class SqlStore:
    """The repository port over one SQLAlchemy engine.

    With `writer_process`, group-committed batches run in a child process of their own
    (`hub.storage.writer_process`), still one at a time on the writer lane, and the next batch
    is handed over while the child commits the current one (`PIPELINE_DEPTH`).
    """

    def __init__(
        self, engine: Engine, *, read_threads: int = 4, writer_process: WriterProcess | None = None
    ):
        self.engine = engine
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="omnihub-db-write")
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="omnihub-db-read")
        self._writer_process = writer_process
        self._pending: list[_Pending] = []
        self._depth = PIPELINE_DEPTH if writer_process is not None else 1
        self._batches: set[asyncio.Task[None]] = set()  # in flight
        self._pump_scheduled = False
        self.on_commit: CommitHook | None = None

    @classmethod
    def from_url(cls, url: str, pool_size: int = 4, *, writer_process: bool = False) -> SqlStore:
        """A store for `url`; `writer_process` is ignored for an in-memory SQLite database,
        which no other process can open."""
        child = WriterProcess(url) if writer_process and not is_in_memory(url) else None
        return cls(create_engine_for(url, pool_size), read_threads=pool_size, writer_process=child)

    # --- the port -----------------------------------------------------------------------------

    async def write(self, fn: Callable[[SqlUnitOfWork], T]) -> T:
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(self._writer, self._run_one, fn)
        return self._settle(outcome)

    async def write_batched(
        self, fn: Callable[[SqlUnitOfWork, list[ItemT]], list[T | Exception]], item: ItemT
    ) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._pending.append(_Pending(fn, item, fut))
        if not self._pump_scheduled:
            # On the next turn of the loop: items queued in this one go out together.
            self._pump_scheduled = True
            loop.call_soon(self._pump)
        return await fut

    async def read(self, fn: Callable[[SqlUnitOfWork], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    async def ping(self) -> None:
        def _ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await asyncio.get_running_loop().run_in_executor(self._readers, _ping)

    async def start(self) -> None:
        """Start the writer process now rather than on the first batch (if there is one)."""
        if self._writer_process is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self._writer_process.start
            )

    async def close(self) -> None:
        while self._batches or self._pending:
            self._pump()
            await asyncio.gather(*self._batches, return_exceptions=True)
        if self._writer_process is not None:
            await asyncio.get_running_loop().run_in_executor(
                self._writer, self._writer_process.close
            )
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    # --- internals ----------------------------------------------------------------------------

    def _settle(self, outcome: Outcome) -> Any:
        if outcome.error is not None:
            raise outcome.error
        self._published(outcome.events)
        return outcome.value

    def _published(self, events: list[Event]) -> None:
        if events and self.on_commit is not None:
            self.on_commit(events)

    def _run_read(self, fn: Callable[[SqlUnitOfWork], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            return fn(SqlUnitOfWork(session))

    def _run_one(self, fn: Callable[[SqlUnitOfWork], Any]) -> Outcome:
        if self._writer_process is not None:
            self._writer_process.drain()  # one writer lane: the child's batches come first
        return run_one(self.engine, fn)

    def _start_batch(self, batch: list[_Pending]) -> Future[list[Outcome]]:
        items = [(p.fn, p.item) for p in batch]
        if self._writer_process is not None:
            return self._writer_process.submit(items)
        done: Future[list[Outcome]] = Future()
        done.set_result(run_batch(self.engine, items))
        return done

    def _pump(self) -> None:
        """Start batches from what is queued while fewer than the pipeline's depth are out."""
        self._pump_scheduled = False
        while self._pending and len(self._batches) < self._depth:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            task = asyncio.create_task(self._commit(batch), name="omnihub-group-commit")
            self._batches.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._pump()

    async def _commit(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Started on the writer lane, so it keeps its place among the store's own writes.
            started = await loop.run_in_executor(self._writer, self._start_batch, batch)
            outcomes = await asyncio.wrap_future(started)
        except Exception as exc:
            # Nothing of this batch is known to be stored; its callers hear so (a web-chat
            # customer is not acknowledged and resends), and later batches go on.
            log.error("group commit of %d items failed: %s", len(batch), exc)
            outcomes = [Outcome(error=exc) for _ in batch]
        except BaseException as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            raise
        for outcome in outcomes:
            self._published(outcome.events)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():  # the caller went away (e.g. socket closed)
                continue
            if outcome.error is not None:
                item.future.set_exception(outcome.error)
            else:
                item.future.set_result(outcome.value)
