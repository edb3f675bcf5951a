"""Telegram updates that arrive while the Bot API cannot be reached: nothing is lost and the
hub never answers 500; Telegram is told to send the update again (503), and the message is
stored with its file once the API is back."""

from __future__ import annotations

import json
import logging

import pytest

from channels.telegram import TelegramChannel
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import only_conversation, telegram_conversations
from tests.channels.telegram.peer import BotApiPeer
from tests.channels.telegram.test_media import download
from tests.channels.telegram.test_outbound import PNG
from tests.support import Agent


async def test_a_photo_while_the_bot_api_is_down_is_redelivered_not_lost(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    file_id = peer.add_file(PNG, "photos/file_9.jpg")
    update = {"update_id": 77, **u.photo(u.ANNA, file_id, len(PNG), caption="cracked screen")}
    await peer.go_down()
    status, body = await peer.post_webhook(json.dumps(update).encode())
    assert status == 503, body  # retryable: Telegram sends the update again later
    error = json.loads(body)["error"]
    assert error["code"] == "telegram_unreachable" and "again" in error["detail"]
    assert await telegram_conversations(agent) == []  # nothing half-stored
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    await peer.come_back()
    status, _ = await peer.post_webhook(json.dumps(update).encode())  # Telegram's redelivery
    assert status == 200
    [message] = (await only_conversation(agent))["messages"]
    assert message["text"] == "cracked screen"
    [attachment] = message["attachments"]
    assert await download(agent, attachment) == PNG


async def test_a_file_telegram_no_longer_has_is_stored_with_a_note(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    peer.fail("getFile", 400, "Bad Request: invalid file_id")
    update = {"update_id": 78, **u.photo(u.ANNA, "FILE-gone", 1234, caption="see photo")}
    status, body = await peer.post_webhook(json.dumps(update).encode())
    assert status == 200, body
    [message] = (await only_conversation(agent))["messages"]
    assert message["text"].startswith("see photo\n\n[")
    assert "photo could not be fetched from Telegram" in message["text"]
    assert message["attachments"] == []
