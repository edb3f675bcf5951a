"""The bot runner across a restart, and answering each message once, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.keys import BOT_RUNNER, BUS, STORE
from hub.model import EventKind
from tests.bot.conftest import bot_says
from tests.conftest import _truncate
from tests.support import Customer


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_database")
    try:
        _truncate(url)
    except Exception:  # not migrated yet: the app does it on start
        pass
    return url


async def test_a_customer_left_waiting_is_answered_after_a_restart(
    hub: TestClient[Any, Any], customer: Customer
) -> None:
    store, runner = hub.app[STORE], hub.app[BOT_RUNNER]
    await customer.connect()
    # As if the process died between storing the message and the bot's turn: nothing
    # hears about the message.
    publish, store.on_commit = store.on_commit, None
    ack = await customer.say("Where is my parcel?", "c1")
    store.on_commit = publish
    assert ack["type"] == "ack"

    assert await runner.resume() == 1  # what start-up does
    reply = await bot_says(customer)
    assert "How do I track my order?" in reply["text"]
    assert await runner.resume() == 0


async def test_a_message_is_answered_once(hub: TestClient[Any, Any], customer: Customer) -> None:
    bus, runner = hub.app[BUS], hub.app[BOT_RUNNER]
    await customer.connect()
    ack = await customer.say("Where is my parcel?", "c1")
    await bot_says(customer)
    # The same event again (a redelivery, or a second process resuming): no second answer.
    stored = await hub.app[STORE].read(lambda uow: uow.events(customer.conversation_id))
    [event] = [
        e
        for e in stored
        if e.kind is EventKind.MESSAGE_CREATED and e.payload["message"]["id"] == ack["message_id"]
    ]
    delivered = asyncio.Event()
    # Subscribed after the runner, so called after it for the same envelope.
    unsubscribe = bus.subscribe(
        lambda e: (
            delivered.set()
            if e["kind"] == "message.created" and e["data"]["message"]["id"] == ack["message_id"]
            else None
        )
    )
    bus.publish(
        {
            "kind": event.kind.value,
            "conversation_id": customer.conversation_id,
            "data": dict(event.payload),
            "origin": bus.node_id,
        }
    )
    await delivered.wait()
    unsubscribe()
    await runner.drain()
    history = await customer.history()
    assert [m["author"] for m in history["messages"]] == ["customer", "bot"]
