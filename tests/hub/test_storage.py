"""The storage layer under the inbound hot path, on SQLite and on the local PostgreSQL.

Group-committed batches keep the conversations they touch across transactions (the writer
process's `ConversationCache`); these tests change a conversation behind such a cache's back,
from another engine as another process would, and check the next batch sees the change.
They also pin SQLite's timestamp text, which must stay the format SQLAlchemy wrote before.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hub import model
from hub.config import normalise_database_url
from hub.model import ConversationStatus, EventKind, Identity, InboundMessage, utcnow
from hub.services.conversations import Inbound, do_change, do_open_conversation, do_receive_many
from hub.storage import migrate
from hub.storage.batches import run_batch, run_one
from hub.storage.engine import create_engine_for
from hub.storage.store import MAX_BATCH, SqlStore
from hub.storage.uow import ConversationCache


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    else:
        url = normalise_database_url(request.getfixturevalue("pg_database"))
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    migrate.upgrade(url)
    return url


@pytest.fixture
def engines(url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one database: the writer process's and the hub's own."""
    pair = create_engine_for(url, 1), create_engine_for(url, 1)
    yield pair
    for engine in pair:
        engine.dispose()


def _open(engine: Engine, address: str) -> model.Conversation:
    outcome = run_one(
        engine, lambda uow: do_open_conversation(uow, "webchat", "web", address, address, None)
    )
    assert outcome.error is None, outcome.error
    conv: model.Conversation = outcome.value
    return conv


def _inbound(conv: model.Conversation, client_id: str) -> Inbound:
    return Inbound(
        InboundMessage(
            channel="webchat",
            inbox="web",
            sender=Identity("webchat", "someone"),
            text=f"message {client_id}",
            channel_message_id=client_id,
            conversation_id=conv.id,
        )
    )


def _read(engine: Engine, conversation_id: int) -> model.Conversation:
    outcome = run_one(engine, lambda uow: uow.conversation(conversation_id))
    assert outcome.value is not None
    conv: model.Conversation = outcome.value
    return conv


def test_a_kept_conversation_changed_elsewhere_is_read_again(
    engines: tuple[Engine, Engine],
) -> None:
    writer, other = engines
    cache = ConversationCache()
    conv = _open(other, "alice")
    [first] = run_batch(writer, [(do_receive_many, _inbound(conv, "a-1"))], cache)
    assert first.error is None and len(cache) == 1

    # Another process resolves the conversation after the writer kept its copy.
    resolve = run_one(
        other,
        lambda uow: do_change(
            uow,
            conv.id,
            lambda c: model.transition(c, ConversationStatus.RESOLVED, utcnow()),
            actor_id=None,  # type: ignore[arg-type]
        ),
    )
    assert resolve.error is None, resolve.error

    # The customer writes again: the writer must see "resolved" and reopen it, not carry on
    # from its stale "queued" copy and leave the message in a finished conversation.
    [second] = run_batch(writer, [(do_receive_many, _inbound(conv, "a-2"))], cache)
    assert second.error is None, second.error
    after = _read(other, conv.id)
    assert after.status is ConversationStatus.QUEUED
    assert after.resolved_at is None
    updates = [e for e in second.events if e.kind is EventKind.CONVERSATION_UPDATED]
    assert [u.payload["changes"]["status"] for u in updates] == [["resolved", "queued"]]


def test_batches_on_many_conversations_update_each_one(engines: tuple[Engine, Engine]) -> None:
    writer, other = engines
    cache = ConversationCache()
    convs = [_open(other, f"c{i}") for i in range(5)]
    for round_ in range(3):
        outcomes = run_batch(
            writer, [(do_receive_many, _inbound(c, f"{c.id}-{round_}")) for c in convs], cache
        )
        assert all(o.error is None for o in outcomes)
        assert len({o.value.created_at for o in outcomes}) == 1  # one batch, one time
        for c in convs:
            stored = _read(other, c.id)
            assert stored.last_message_at == outcomes[0].value.created_at
            assert stored.updated_at == outcomes[0].value.created_at


def test_sqlite_timestamps_keep_sqlalchemys_text_format(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    migrate.upgrade(url)
    engine = create_engine_for(url, 1)
    conv = _open(engine, "bob")
    raw = sqlite3.connect(tmp_path / "hub.sqlite3")
    [(created,)] = raw.execute("SELECT created_at FROM conversation WHERE id = ?", (conv.id,))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", created), created
    assert datetime.fromisoformat(created).replace(tzinfo=UTC) == conv.created_at

    # Text without microseconds (SQLite's own CURRENT_TIMESTAMP form) reads back too.
    raw.execute(
        "UPDATE conversation SET updated_at = '2026-01-02 03:04:05' WHERE id = ?", (conv.id,)
    )
    raw.commit()
    raw.close()
    assert _read(engine, conv.id).updated_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    engine.dispose()


async def test_pipelined_batches_store_everything_once_and_in_order(url: str) -> None:
    store = SqlStore.from_url(url, 1, writer_process=True)
    await store.start()
    published: list[int] = []
    store.on_commit = lambda events: published.extend(
        e.payload["message"]["id"] for e in events if e.kind is EventKind.MESSAGE_CREATED
    )
    try:
        conv = await store.write(
            lambda uow: do_open_conversation(uow, "webchat", "web", "carol", "Carol", None)
        )
        count = 3 * MAX_BATCH + 17  # more than the pipeline holds at once
        batched = asyncio.gather(
            *(store.write_batched(do_receive_many, _inbound(conv, f"k-{i}")) for i in range(count))
        )
        for _ in range(3):
            await asyncio.sleep(0)  # the first batches go out
        # The store's own writes wait for the batches in flight instead of racing them for
        # the database's write lock.
        urgent = await store.write(
            lambda uow: do_change(
                uow,
                conv.id,
                lambda c: dataclasses.replace(c, priority=model.Priority.URGENT),
                actor_id=None,  # type: ignore[arg-type]
            )
        )
        messages = await batched
        # A write of the store's own, queued behind batches in flight, sees all of them.
        resolved = await store.write(
            lambda uow: do_change(
                uow,
                conv.id,
                lambda c: model.transition(c, ConversationStatus.RESOLVED, utcnow()),
                actor_id=None,  # type: ignore[arg-type]
            )
        )
        assert urgent.priority is resolved.priority is model.Priority.URGENT
        assert resolved.last_message_at == max(m.created_at for m in messages)
        stored = await store.read(lambda uow: uow.messages(conv.id, limit=10_000))
    finally:
        await store.close()
    ids = [m.id for m in messages]
    assert len(set(ids)) == count
    assert [m.text for m in messages] == [f"message k-{i}" for i in range(count)]
    assert sorted(ids) == ids  # committed in the order they were queued
    assert [m.id for m in stored] == ids
    assert published == ids
