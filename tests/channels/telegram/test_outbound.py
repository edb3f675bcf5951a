"""Replies to Telegram users through the durable outbox: text, inline keyboards whose presses
come back as the customer's choice, files, Telegram's flood control and blocked users."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from channels.telegram import TelegramChannel
from hub.api.app import DEMO_FAQ_TASK
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import conversation_detail, eventually, only_conversation
from tests.channels.telegram.peer import BotApiPeer, Call, telegram_html_text
from tests.support import Agent, next_frame

ALEX = {"id": 7010, "is_bot": False, "first_name": "Alex", "language_code": "en"}
# A real (1x1 pixel) PNG and a small PDF-like document.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cfc0f01f0005000201e221bc330000000049454e44ae426082"
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def reply(agent: Agent, conversation_id: int, text: str, **extra: Any) -> dict[str, Any]:
    status, body = await agent.post(
        f"/api/conversations/{conversation_id}/messages", {"text": text, **extra}
    )
    assert status == 201, body
    return dict(body["message"])


async def delivery(agent: Agent, conversation_id: int, message_id: int, state: str) -> None:
    async def probe() -> bool:
        detail = await conversation_detail(agent, conversation_id)
        [m] = [m for m in detail["messages"] if m["id"] == message_id]
        return bool(m["delivery_state"] == state)

    await eventually(probe)


async def upload(agent: Agent, name: str, data: bytes, content_type: str) -> dict[str, Any]:
    form = aiohttp.FormData()
    form.add_field("file", data, filename=name, content_type=content_type)
    async with agent.http.post(
        agent.base + "/api/attachments", data=form, headers={"X-CSRF-Token": agent.csrf}
    ) as resp:
        assert resp.status == 201, await resp.text()
        return dict((await resp.json())["attachment"])


async def customer_conversation(peer: BotApiPeer, agent: Agent, user: dict[str, Any]) -> int:
    await peer.post_webhook(u.text(user, "Hello, I need help with my order"))
    detail = await only_conversation(agent)
    return int(detail["conversation"]["id"])


async def test_an_agent_reply_is_sent_to_the_users_chat(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    message = await reply(agent, cid, "Hi Alex, let me check.")
    [call] = await peer.wait_for("sendMessage")
    assert int(call.params["chat_id"]) == 7010
    assert call.params["text"] == "Hi Alex, let me check."
    assert "reply_markup" not in call.params
    await delivery(agent, cid, message["id"], "sent")


async def test_a_reply_longer_than_telegram_allows_goes_in_pieces(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    text = "ab" * 2500  # 5000 characters: Telegram takes 4096 per message
    message = await reply(agent, cid, text)
    calls = await peer.wait_for("sendMessage", count=2)
    assert "".join(c.params["text"] for c in calls) == text
    await delivery(agent, cid, message["id"], "sent")


async def test_an_agent_reply_in_markdown_goes_as_telegram_html(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    text = (
        "**Express** ships [next day](https://shop.example/express).\n\n"
        "| Option | Days |\n|---|--:|\n| Standard | 3–5 |\n| Express | 1 |\n\n"
        "Not <img src=x onerror=alert(1)> [x](javascript:alert(1)) a < b & c\n\n"
        "<script>alert(1)</script>"
    )
    message = await reply(agent, cid, text)
    [call] = await peer.wait_for("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    assert call.params["text"] == (
        '<b>Express</b> ships <a href="https://shop.example/express">next day</a>.\n\n'
        "<pre>Option    Days\n--------  ----\nStandard   3–5\nExpress      1</pre>\n\n"
        "Not  x a &lt; b &amp; c"
    )
    await delivery(agent, cid, message["id"], "sent")  # Telegram could parse it


@pytest.mark.parametrize("bot_inboxes", [{"support": {"enabled": True}}])
async def test_a_bot_answer_goes_as_telegram_html_without_raw_markdown(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent, hub: TestClient[Any, Any]
) -> None:
    await asyncio.shield(hub.app[DEMO_FAQ_TASK])  # the FAQ is in and indexed
    await peer.post_webhook(u.text(ALEX, "How long does delivery take?"))
    [call] = await peer.wait_for("sendMessage")
    assert call.params["parse_mode"] == "HTML"
    tags = set(re.findall(r"</?([a-z-]+)", call.params["text"]))
    assert tags <= {"b", "i", "u", "s", "code", "pre", "a"}, tags
    assert re.search(
        r'<a href="http[^"]*/help/articles/en-shipping-times">', call.params["text"]
    ), call.params["text"]
    shown = telegram_html_text(call.params["text"])  # what the user sees
    assert "**" not in shown and "|---" not in shown and "](" not in shown, shown


@pytest.mark.parametrize("bot_inboxes", [{"support": {"enabled": True}}])
async def test_csat_buttons_round_trip_through_a_callback_query(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    # The bot answers first; asking for a person hands the conversation to the agents.
    await peer.post_webhook(u.text(ALEX, "I want to talk to a human"))
    detail = await only_conversation(agent)
    cid = detail["conversation"]["id"]

    async def queued() -> bool:
        detail = await conversation_detail(agent, cid)
        return bool(detail["conversation"]["status"] == "queued")

    await eventually(queued)
    await reply(agent, cid, "Your parcel left the warehouse today.")
    status, body = await agent.post(f"/api/conversations/{cid}/resolve")
    assert status == 200, body

    def is_csat(call: Call) -> bool:
        return "reply_markup" in call.params and "rate" in call.params["text"]

    [ask] = await peer.wait_for("sendMessage", is_csat)
    keyboard = ask.params["reply_markup"]["inline_keyboard"]
    buttons = [b for row in keyboard for b in row]
    assert [b["text"] for b in buttons] == ["1", "2", "3", "4", "5"]
    assert len(keyboard) == 1  # short choices share one row

    five = buttons[4]["callback_data"]
    status, _ = await peer.post_webhook(u.callback(ALEX, five, ask.result, "cbq-1"))
    assert status == 200
    [answered] = peer.calls_of("answerCallbackQuery")
    assert answered.params["callback_query_id"] == "cbq-1"

    async def rated() -> dict[str, Any] | None:
        detail = await conversation_detail(agent, cid)
        return detail if detail["conversation"]["csat"] == 5 else None

    detail = await eventually(rated)
    customer = [m["text"] for m in detail["messages"] if m["author"] == "customer"]
    assert customer[-1] == "5"  # the pressed choice, as if typed
    # Pressing again (Telegram resends the update) stores nothing new.
    await peer.post_webhook(u.callback(ALEX, five, ask.result, "cbq-1"))
    detail = await conversation_detail(agent, cid)
    assert [m["text"] for m in detail["messages"] if m["author"] == "customer"] == customer


async def test_a_forged_or_foreign_button_is_answered_but_stores_nothing(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    sent = {"message_id": 1, "date": 0, "from": {"id": 1, "is_bot": True, "first_name": "b"}}
    # ANNA presses a button of ALEX's conversation; ALEX presses one that does not exist.
    await peer.post_webhook(u.callback(u.ANNA, f"c:{cid}:1:0", sent, "cbq-x"))
    await peer.post_webhook(u.callback(ALEX, f"c:{cid}:999999:0", sent, "cbq-y"))
    await peer.post_webhook(u.callback(ALEX, "garbage", sent, "cbq-z"))
    answers = peer.calls_of("answerCallbackQuery")
    assert [a.params["callback_query_id"] for a in answers] == ["cbq-x", "cbq-y", "cbq-z"]
    assert all(a.params["text"] == "This choice is no longer available." for a in answers)
    detail = await conversation_detail(agent, cid)
    assert len(detail["messages"]) == 1


async def test_agent_attachments_go_as_photo_and_document(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    png = await upload(agent, "label.png", PNG, "image/png")
    pdf = await upload(agent, "invoice.pdf", PDF, "application/pdf")
    message = await reply(agent, cid, "Here are your label and invoice.", attachments=[png, pdf])
    [text] = await peer.wait_for("sendMessage")
    [photo] = await peer.wait_for("sendPhoto")
    [document] = await peer.wait_for("sendDocument")
    assert text.params["text"] == "Here are your label and invoice."
    assert photo.files["photo"][2] == PNG
    assert document.files["document"][0] == "invoice.pdf"
    assert document.files["document"][2] == PDF
    assert text.at < photo.at < document.at
    await delivery(agent, cid, message["id"], "sent")


async def test_flood_control_waits_as_long_as_telegram_says(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    peer.flood("sendMessage", retry_after=2)
    message = await reply(agent, cid, "Sorry for the wait.")
    first, second = await peer.wait_for("sendMessage", count=2)
    assert first.params["text"] == second.params["text"] == "Sorry for the wait."
    # Telegram said 2 s: longer than the outbox's own first backoff (0.2 s in these tests)
    # and the per-chat spacing (1 s), so only honouring retry_after explains the gap.
    assert second.at - first.at >= 2.0
    await delivery(agent, cid, message["id"], "sent")


async def test_a_retry_after_a_partial_send_does_not_repeat_what_arrived(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    pdf = await upload(agent, "invoice.pdf", PDF, "application/pdf")
    peer.fail("sendDocument", 502, "Bad Gateway")  # a network failure: retried
    message = await reply(agent, cid, "Your invoice.", attachments=[pdf])
    await peer.wait_for("sendDocument", count=2)
    await delivery(agent, cid, message["id"], "sent")
    assert len(peer.calls_of("sendMessage")) == 1


async def test_a_user_who_blocked_the_bot_is_shown_to_the_agent_and_marked_unreachable(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    peer.blocked("sendMessage")
    events = await agent.events()
    try:
        message = await reply(agent, cid, "Are you still there?")
        unreachable = await next_frame(
            events, lambda f: f.get("kind") == "contact.identity_unreachable"
        )
        failed = await next_frame(
            events,
            lambda f: (
                f.get("kind") == "message.delivery"
                and f["data"]["message"]["delivery_state"] == "failed"
            ),
        )
    finally:
        await events.close()
    assert unreachable["conversation_id"] == cid
    assert unreachable["data"]["identity"] == {"channel": "telegram", "address": "7010"}
    assert "blocked" in unreachable["data"]["reason"]
    assert failed["data"]["message"]["id"] == message["id"]
    assert "blocked the bot" in failed["data"]["detail"]
    assert len(peer.calls_of("sendMessage")) == 1  # not retried


async def test_sends_to_one_chat_are_spaced_by_the_per_chat_limit(
    ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    cid = await customer_conversation(peer, agent, ALEX)
    for n in range(3):
        await reply(agent, cid, f"part {n}")
    calls = await peer.wait_for("sendMessage", count=3)
    # Telegram allows about one message a second per chat; a lower bound cannot flake.
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.9 for gap in gaps), gaps
    assert sorted(json.dumps(c.params["text"]) for c in calls) == [
        '"part 0"',
        '"part 1"',
        '"part 2"',
    ]
