"""Long-polling mode (no public URL): getUpdates, with the offset confirmed only after the
messages are stored."""

from __future__ import annotations

import pytest

from channels.telegram import TelegramChannel
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import only_conversation
from tests.channels.telegram.peer import BotApiPeer
from tests.support import Agent

POLLING = [{"mode": "polling"}]


@pytest.mark.parametrize("inbox_options", POLLING)
@pytest.mark.parametrize("telegram_extra", [{"polling_timeout": 2}])
async def test_polling_takes_updates_and_confirms_them_once_stored(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    assert peer.calls_of("deleteWebhook") and not peer.calls_of("setWebhook")
    first = await peer.queue_update(u.text(u.ANNA, "hello by polling"))
    second = await peer.queue_update(u.text(u.ANNA, "and again"))
    await peer.wait_confirmed(second)
    # Confirmed means stored: the messages are there as soon as the offset moved.
    detail = await only_conversation(agent)
    assert [m["text"] for m in detail["messages"]] == ["hello by polling", "and again"]
    assert first < second
    polls = peer.calls_of("getUpdates")
    assert int(polls[0].params["timeout"]) == 2  # a real long poll
    assert polls[0].params["allowed_updates"] == ["message", "callback_query"]
    assert len(peer.calls_of("getMe")) == 1


@pytest.mark.parametrize("inbox_options", POLLING)
@pytest.mark.parametrize("telegram_extra", [{"polling_timeout": 1}])
async def test_polling_stores_a_repeated_message_once(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    update = u.text(u.ANNA, "just once", message_id=77)
    await peer.queue_update(update)
    last = await peer.queue_update(update)  # same message under a new update id
    await peer.wait_confirmed(last)
    detail = await only_conversation(agent)
    assert [m["text"] for m in detail["messages"]] == ["just once"]


@pytest.mark.parametrize("inbox_options", POLLING)
@pytest.mark.parametrize("telegram_extra", [{"polling_timeout": 1}])
async def test_polling_survives_telegram_errors(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    peer.fail("getUpdates", 502, "Bad Gateway", count=2)
    last = await peer.queue_update(u.text(u.ANNA, "after the outage"))
    await peer.wait_confirmed(last, timeout=30)
    detail = await only_conversation(agent)
    assert [m["text"] for m in detail["messages"]] == ["after the outage"]


@pytest.mark.parametrize("inbox_options", POLLING)
async def test_the_webhook_route_refuses_a_polling_inbox(
    ready: TelegramChannel, peer: BotApiPeer, hub_port: int
) -> None:
    peer.webhook_url = f"http://127.0.0.1:{hub_port}/api/telegram/support/webhook"
    peer.webhook_secret = "anything-at-all-1234"
    status, _ = await peer.post_webhook(u.text(u.ANNA, "hello"))
    assert status == 404
