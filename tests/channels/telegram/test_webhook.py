"""Webhook mode: the hub registers its webhook with a secret, and turns the updates Telegram
POSTs into messages, refusing or ignoring what it must."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from openapi_spec_validator import validate

from channels.telegram import TelegramChannel
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import (
    INBOX,
    conversation_detail,
    only_conversation,
    telegram_conversations,
)
from tests.channels.telegram.peer import BotApiPeer
from tests.support import Agent


async def test_start_sets_the_webhook_with_a_secret_and_calls_get_me_once(
    ready: TelegramChannel, peer: BotApiPeer, hub_port: int
) -> None:
    [call] = peer.calls_of("setWebhook")
    assert call.params["url"] == f"http://127.0.0.1:{hub_port}/api/telegram/{INBOX}/webhook"
    secret = call.params["secret_token"]
    assert len(secret) >= 32 and secret.isalnum()
    assert call.params["allowed_updates"] == ["message", "callback_query"]
    for n in range(3):
        status, _ = await peer.post_webhook(u.text(u.ANNA, f"question {n}"))
        assert status == 200
    assert len(peer.calls_of("getMe")) == 1  # once at start, never per update
    assert not peer.calls_of("getUpdates")


async def test_a_private_message_becomes_a_message_on_the_users_conversation(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    status, body = await peer.post_webhook(u.text(u.ANNA, "주문한 물건이 아직 안 왔어요"))
    assert (status, json.loads(body)) == (200, {"ok": True})
    # Acknowledged only once stored: the message is there the moment the 200 arrives.
    convs = await telegram_conversations(agent)
    assert len(convs) == 1
    detail = await conversation_detail(agent, convs[0]["id"])
    assert detail["conversation"]["inbox"] == INBOX
    assert detail["conversation"]["language"] == "ko"
    contact = detail["contact"]
    assert contact["display_name"] == "Anna Kim"
    assert contact["identities"] == [{"channel": "telegram", "address": "7001"}]
    [message] = detail["messages"]
    assert message["text"] == "주문한 물건이 아직 안 왔어요"
    assert message["author"] == "customer"

    await peer.post_webhook(u.text(u.ANNA, "언제 오나요?"))
    detail = await conversation_detail(agent, convs[0]["id"])
    assert [m["text"] for m in detail["messages"]] == [
        "주문한 물건이 아직 안 왔어요",
        "언제 오나요?",
    ]


async def test_names_fall_back_to_the_username_and_chinese_maps_to_zh_cn(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    await peer.post_webhook(u.text(u.NOBODY, "hello"))
    await peer.post_webhook(u.text(u.LI, "你好"))
    convs = {c["contact"]["display_name"]: c for c in await telegram_conversations(agent)}
    assert set(convs) == {"@ghost42", "李 雷"}
    assert convs["李 雷"]["language"] == "zh-CN"


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-Telegram-Bot-Api-Secret-Token": "wrong-secret-wrong-secret"}, 403)],
)
async def test_updates_without_the_right_secret_are_refused(
    ready: TelegramChannel,
    peer: BotApiPeer,
    agent: Agent,
    headers: dict[str, str],
    status: int,
) -> None:
    got, body = await peer.post_webhook(u.text(u.ANNA, "let me in"), secret=None, **headers)
    assert got == status
    assert json.loads(body)["error"]["code"] in ("not_authenticated", "bad_secret")
    assert await telegram_conversations(agent) == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b'{"update_id": 5, "message": ', 400, "malformed_json"),
        (b"[1, 2, 3]", 400, "malformed_json"),
        (b'{"message": {"text": "no update id"}}', 422, "validation_failed"),
        (b'{"update_id": 6, "message": {"text": "no chat, no date"}}', 400, "bad_update"),
    ],
)
async def test_malformed_updates_get_a_clear_4xx(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, body: bytes, status: int, code: str
) -> None:
    got, answer = await peer.post_webhook(body)
    assert got == status, answer
    assert json.loads(answer)["error"]["code"] == code
    assert await telegram_conversations(agent) == []


async def test_unknown_update_types_are_acknowledged_and_ignored_with_a_log_line(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    edited = u.text(u.ANNA, "edited text")
    caplog.set_level(logging.INFO, logger="channels.telegram")
    status, _ = await peer.post_webhook({"edited_message": edited["message"]})
    assert status == 200
    status, _ = await peer.post_webhook({"poll_answer_v9": {"something": "new"}})
    assert status == 200
    assert await telegram_conversations(agent) == []
    assert "ignoring a Telegram update of kind edited_message" in caplog.text


async def test_a_resent_update_never_creates_a_second_message(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    update: dict[str, Any] = {"update_id": 424242, **u.text(u.ANNA, "only once please")}
    body = json.dumps(update).encode()
    for _ in range(3):  # Telegram resends when it did not hear 200 in time
        status, _ = await peer.post_webhook(body)
        assert status == 200
    detail = await only_conversation(agent)
    assert [m["text"] for m in detail["messages"]] == ["only once please"]


async def test_group_chats_are_ignored_by_default(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="channels.telegram")
    status, _ = await peer.post_webhook(u.text(u.ANNA, "hi all", chat=u.GROUP))
    assert status == 200
    assert await telegram_conversations(agent) == []
    assert "ignoring group chat -100200300" in caplog.text


@pytest.mark.parametrize("inbox_options", [{"allow_groups": True}])
async def test_an_inbox_can_take_group_chats(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    await peer.post_webhook(u.text(u.ANNA, "hi all", chat=u.GROUP))
    detail = await only_conversation(agent)
    assert detail["contact"]["display_name"] == "Customers"
    assert detail["contact"]["identities"] == [{"channel": "telegram", "address": "-100200300"}]
    assert detail["messages"][0]["text"] == "Anna Kim: hi all"
    # The group is the customer: the agent's reply goes to the group chat.
    status, _ = await agent.post(
        f"/api/conversations/{detail['conversation']['id']}/messages", {"text": "Hello group"}
    )
    assert status == 201
    [sent] = await peer.wait_for("sendMessage")
    assert int(sent.params["chat_id"]) == -100200300


async def test_the_webhook_of_an_unknown_inbox_is_not_found(
    ready: TelegramChannel, peer: BotApiPeer, hub_port: int
) -> None:
    peer.webhook_url = f"http://127.0.0.1:{hub_port}/api/telegram/nosuch/webhook"
    status, body = await peer.post_webhook(u.text(u.ANNA, "hello"))
    assert status == 404
    assert json.loads(body)["error"]["code"] == "unknown_inbox"


async def test_the_openapi_document_describes_the_telegram_endpoints(
    ready: TelegramChannel, agent: Agent
) -> None:
    status, spec = await agent.get("/api/openapi.json")
    assert status == 200
    validate(spec)
    assert "post" in spec["paths"]["/api/telegram/{inbox}/webhook"]
    assert "post" in spec["paths"]["/api/webchat/telegram-link"]
