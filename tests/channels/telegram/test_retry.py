"""Replies to Telegram wait out an outage of the Bot API and fail at once, with Telegram's
reason for the agent, when Telegram refuses them for good (issue 18, items 11 and 12)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from channels.telegram import TelegramChannel
from hub.config import RetryRule, Settings
from tests.channels.telegram.conftest import conversation_detail, eventually
from tests.channels.telegram.peer import BotApiPeer
from tests.channels.telegram.test_outbound import ALEX, customer_conversation, delivery, reply
from tests.support import Agent

OUTBOX_LOG = "hub.services.outbox"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Retries at most 0.3 s apart (Telegram's rule keeps its lifetime)."""
    rule = RetryRule.model_validate({"max_retry": 0.3})
    return settings.model_copy(update={"outbox_retry": {"telegram": rule}})


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OUTBOX_LOG and r.levelno == level]


async def the_message(agent: Agent, conversation_id: int, message_id: int) -> dict[str, Any]:
    detail = await conversation_detail(agent, conversation_id)
    [found] = [m for m in detail["messages"] if m["id"] == message_id]
    return found


async def test_a_reply_waits_out_a_telegram_outage_and_goes_out_once(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    cid = await customer_conversation(peer, agent, ALEX)
    await peer.go_down()
    message = await reply(agent, cid, "We are looking into it.")

    async def retried() -> bool:
        return len(records(caplog, logging.WARNING)) >= 3

    await eventually(retried)
    waiting = await the_message(agent, cid, message["id"])
    assert (waiting["delivery_state"], waiting["delivery_error"]) == ("queued", None)
    assert all("Telegram could not be reached" in w for w in records(caplog, logging.WARNING))

    await peer.come_back()
    await delivery(agent, cid, message["id"], "sent")
    sent = [c for c in peer.calls_of("sendMessage") if c.result is not None]
    assert [c.params["text"] for c in sent] == ["We are looking into it."]
    assert (await the_message(agent, cid, message["id"]))["delivery_error"] is None
    assert not records(caplog, logging.ERROR)


@pytest.mark.parametrize(
    ("status", "description", "reason"),
    [
        (403, "Forbidden: bot was blocked by the user", "bot was blocked by the user"),
        (400, "Bad Request: chat not found", "Chat not found"),  # as python-telegram-bot puts it
    ],
)
async def test_a_permanent_refusal_fails_at_once_with_telegrams_reason(
    ready: TelegramChannel,
    peer: BotApiPeer,
    agent: Agent,
    caplog: pytest.LogCaptureFixture,
    status: int,
    description: str,
    reason: str,
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    cid = await customer_conversation(peer, agent, ALEX)
    peer.fail("sendMessage", status, description)
    message = await reply(agent, cid, "Are you still there?")
    await delivery(agent, cid, message["id"], "failed")
    failed = await the_message(agent, cid, message["id"])
    assert reason in failed["delivery_error"]
    assert len(peer.calls_of("sendMessage")) == 1  # not retried
    assert not records(caplog, logging.WARNING)
    [error] = records(caplog, logging.ERROR)
    assert f"message {message['id']} (conversation {cid}, telegram)" in error
    assert failed["delivery_error"] in error
