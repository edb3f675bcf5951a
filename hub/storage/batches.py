"""Running units of work against an engine: one at a time, or a group-committed batch.

Shared by the store's writer thread and the writer process (`hub.storage.writer_process`), so
both commit, roll back and fall back in exactly the same way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from hub.model import Event
from hub.storage.uow import ConversationCache, SqlUnitOfWork

log = logging.getLogger(__name__)

BatchFn = Callable[[SqlUnitOfWork, list[Any]], list[Any]]


@dataclass(slots=True)
class Outcome:
    """What one unit of work (or one item of a batch) came to."""

    value: Any = None
    error: BaseException | None = None
    events: list[Event] = field(default_factory=list)


def _single(fn: BatchFn, item: Any, uow: SqlUnitOfWork) -> Any:
    [result] = fn(uow, [item])
    if isinstance(result, Exception):
        raise result
    return result


def run_one(engine: Engine, fn: Callable[[SqlUnitOfWork], Any]) -> Outcome:
    """Run `fn` in a transaction of its own; an error rolls it back and is returned."""
    with Session(engine, expire_on_commit=False) as session:
        uow = SqlUnitOfWork(session)
        try:
            value = fn(uow)
            session.commit()
        except BaseException as exc:  # reported to the awaiting caller, not swallowed
            session.rollback()
            return Outcome(error=exc)
        return Outcome(value=value, events=uow.appended)


def run_batch(
    engine: Engine, batch: list[tuple[BatchFn, Any]], cache: ConversationCache | None = None
) -> list[Outcome]:
    """Run many items in one transaction: each fn once with all of its items, in order.

    If the batch fails (an unexpected error, a unique race with another process) or its commit
    does, nothing of it is kept and each item runs again in a transaction of its own, so only
    the offending one reports an error. Events go out once, with the first outcome. `cache`
    keeps the conversations a committed batch read and wrote, for the batches after it.
    """
    groups: dict[BatchFn, list[int]] = {}
    for index, (fn, _item) in enumerate(batch):
        groups.setdefault(fn, []).append(index)
    outcomes = [Outcome() for _ in batch]
    with Session(engine, expire_on_commit=False) as session:
        uow = SqlUnitOfWork(session, cache)
        try:
            for fn, indexes in groups.items():
                results = fn(uow, [batch[i][1] for i in indexes])
                for i, result in zip(indexes, results, strict=True):
                    if isinstance(result, Exception):
                        outcomes[i].error = result
                    else:
                        outcomes[i].value = result
            session.commit()
        except Exception:
            session.rollback()
            if len(batch) > 1:
                log.info("group commit rolled back; running %d items one by one", len(batch))
            return [run_one(engine, functools.partial(_single, fn, item)) for fn, item in batch]
    uow.committed()
    outcomes[0].events = uow.appended
    return outcomes
