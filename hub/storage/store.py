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
import functools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.model import Event
from hub.storage.uow import SqlUnitOfWork

log = logging.getLogger(__name__)
T = TypeVar("T")
ItemT = TypeVar("ItemT")
CommitHook = Callable[[Sequence[Event]], None]

MAX_BATCH = 256


def create_engine_for(url: str, pool_size: int = 4) -> Engine:
    """An engine with the settings each backend needs for durability and concurrency."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite opens transactions lazily, only before a write, so a unit's reads would
            # run outside its transaction; SQLAlchemy's documented recipe: switch pysqlite's
            # handling off and emit BEGIN ourselves.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we acknowledge; group commit keeps it cheap.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


BatchFn = Callable[[SqlUnitOfWork, list[Any]], list[Any]]


@dataclass
class _Pending:
    fn: BatchFn
    item: Any
    future: asyncio.Future[Any]


@dataclass
class _Outcome:
    value: Any = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)


def _single(pending: _Pending, uow: SqlUnitOfWork) -> Any:
    [result] = pending.fn(uow, [pending.item])
    if isinstance(result, Exception):
        raise result
    return result


class SqlStore:
    """The repository port over one SQLAlchemy engine."""

    def __init__(self, engine: Engine, *, read_threads: int = 4):
        self.engine = engine
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="omnihub-db-write")
        self._readers = ThreadPoolExecutor(read_threads, thread_name_prefix="omnihub-db-read")
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self.on_commit: CommitHook | None = None

    @classmethod
    def from_url(cls, url: str, pool_size: int = 4) -> SqlStore:
        return cls(create_engine_for(url, pool_size), read_threads=pool_size)

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
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_loop(), name="omnihub-group-commit")
        return await fut

    async def read(self, fn: Callable[[SqlUnitOfWork], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, self._run_read, fn)

    async def ping(self) -> None:
        def _ping() -> None:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))

        await asyncio.get_running_loop().run_in_executor(self._readers, _ping)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()

    # --- internals ----------------------------------------------------------------------------

    def _settle(self, outcome: _Outcome) -> Any:
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

    def _run_one(self, fn: Callable[[SqlUnitOfWork], Any]) -> _Outcome:
        with Session(self.engine, expire_on_commit=False) as session:
            uow = SqlUnitOfWork(session)
            try:
                value = fn(uow)
                session.commit()
            except BaseException as exc:  # reported to the awaiting caller, not swallowed
                session.rollback()
                return _Outcome(error=exc)
            return _Outcome(value=value, events=uow.appended)

    def _run_batch(self, batch: list[_Pending]) -> list[_Outcome]:
        groups: dict[BatchFn, list[int]] = {}
        for index, pending in enumerate(batch):
            groups.setdefault(pending.fn, []).append(index)
        outcomes: list[_Outcome] = [_Outcome() for _ in batch]
        with Session(self.engine, expire_on_commit=False) as session:
            uow = SqlUnitOfWork(session)
            try:
                for fn, indexes in groups.items():
                    results = fn(uow, [batch[i].item for i in indexes])
                    for i, result in zip(indexes, results, strict=True):
                        if isinstance(result, Exception):
                            outcomes[i].error = result
                        else:
                            outcomes[i].value = result
                session.commit()
            except Exception:
                # The batch failed (an unexpected error, a unique race with another process)
                # or its commit did: nothing of it is kept, and each item runs again in its own
                # transaction so that only the offending one reports an error.
                session.rollback()
                if len(batch) > 1:
                    log.info("group commit rolled back; running %d items one by one", len(batch))
                return [self._run_one(functools.partial(_single, p)) for p in batch]
        # Events go out once, with the first outcome; every caller's item is in the commit.
        outcomes[0].events = uow.appended
        return outcomes

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                outcomes = await loop.run_in_executor(self._writer, self._run_batch, batch)
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
