"""`/start <token>` deep links: a web chat customer continues on Telegram as the same contact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from aiohttp.test_utils import TestClient

from channels.telegram import TelegramChannel
from channels.telegram.linking import LinkSigner
from tests.channels.telegram import updates as u
from tests.channels.telegram.conftest import (
    conversation_detail,
    eventually,
    telegram_conversations,
)
from tests.channels.telegram.peer import TOKEN, BotApiPeer
from tests.support import Agent, Customer

ALEX = {"id": 7010, "is_bot": False, "first_name": "Alex", "language_code": "en"}


async def link_for(hub: TestClient[Any, Any], customer: Customer) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            str(hub.make_url("/api/webchat/telegram-link")), json={"token": customer.token}
        ) as resp,
    ):
        return resp.status, dict(await resp.json())


async def web_customer(hub: TestClient[Any, Any]) -> Customer:
    """A web chat customer who has said hello (and left: its socket is closed)."""
    async with aiohttp.ClientSession() as http:
        customer = await Customer(http, str(hub.make_url("")).rstrip("/")).start()
        ws = await customer.connect()
        ack = await customer.say("Hi, I am on your website", "c1")
        assert ack["type"] == "ack", ack
        await ws.close()
    return customer


def start_token(url: str) -> str:
    """The `/start` parameter of a t.me deep link."""
    [token] = parse_qs(urlsplit(url).query)["start"]
    return token


async def test_a_web_chat_customer_continues_on_telegram_as_the_same_contact(
    hub: TestClient[Any, Any], ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    customer = await web_customer(hub)
    status, body = await link_for(hub, customer)
    assert status == 200, body
    url = urlsplit(body["url"])
    assert (url.scheme, url.netloc, url.path) == ("https", "t.me", "/omnihub_test_bot")
    token = start_token(body["url"])
    assert len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum()
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)

    status, _ = await peer.post_webhook(u.command(ALEX, f"/start {token}"))
    assert status == 200
    [linked] = await peer.wait_for("sendMessage")
    assert int(linked.params["chat_id"]) == 7010
    assert "linked" in linked.params["text"]

    web = await conversation_detail(agent, customer.conversation_id)
    identities = {(i["channel"], i["address"]) for i in web["contact"]["identities"]}
    assert ("telegram", "7010") in identities
    assert await telegram_conversations(agent) == []  # /start itself is no message

    await peer.post_webhook(u.text(ALEX, "It's me again, now on Telegram"))
    [conv] = await eventually(lambda: telegram_conversations(agent))
    assert conv["contact"]["id"] == web["contact"]["id"]
    detail = await conversation_detail(agent, conv["id"])
    assert customer.conversation_id in [c["id"] for c in detail["other_conversations"]]


async def test_forged_and_bare_start_commands_link_nothing(
    hub: TestClient[Any, Any], ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    customer = await web_customer(hub)
    _, body = await link_for(hub, customer)
    token = start_token(body["url"])
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    await peer.post_webhook(u.command(ALEX, f"/start {forged}"))
    await peer.post_webhook(u.command(ALEX, "/start"))
    bad, welcome = await peer.wait_for("sendMessage", count=2)
    assert "expired or is not valid" in bad.params["text"]
    assert welcome.params["text"].startswith("Hello!")
    web = await conversation_detail(agent, customer.conversation_id)
    assert [i["channel"] for i in web["contact"]["identities"]] == ["webchat"]
    assert await telegram_conversations(agent) == []


async def test_a_telegram_user_who_is_already_a_contact_is_not_moved(
    hub: TestClient[Any, Any], ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    await peer.post_webhook(u.text(ALEX, "I wrote on Telegram first"))
    customer = await web_customer(hub)
    _, body = await link_for(hub, customer)
    token = start_token(body["url"])
    await peer.post_webhook(u.command(ALEX, f"/start {token}"))
    [answer] = await peer.wait_for("sendMessage")
    assert "already linked to another customer record" in answer.params["text"]
    web = await conversation_detail(agent, customer.conversation_id)
    assert [i["channel"] for i in web["contact"]["identities"]] == ["webchat"]


async def test_the_link_endpoint_wants_a_live_web_chat_token(
    hub: TestClient[Any, Any], ready: TelegramChannel
) -> None:
    async with aiohttp.ClientSession() as http:
        url = str(hub.make_url("/api/webchat/telegram-link"))
        async with http.post(url, json={"token": "x" * 40}) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_token"
        async with http.post(url, json={}) as resp:
            assert resp.status == 422


def test_link_tokens_expire_and_belong_to_one_bot_and_inbox() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    signer = LinkSigner(TOKEN, "support", timedelta(hours=24))
    token = signer.encode(signer.mint(42, now))
    assert signer.decode(token, now + timedelta(hours=23)) is not None
    assert signer.decode(token, now + timedelta(hours=25)) is None
    assert LinkSigner(TOKEN, "sales", timedelta(hours=24)).decode(token, now) is None
    other_bot = LinkSigner("999:" + "x" * 30, "support", timedelta(hours=24))
    assert other_bot.decode(token, now) is None
    found = signer.decode(token, now)
    assert found is not None and found.contact_id == 42


async def test_an_agent_gets_an_invite_for_a_known_contact(
    hub: TestClient[Any, Any], ready: TelegramChannel, peer: BotApiPeer, agent: Agent
) -> None:
    customer = await web_customer(hub)
    web = await conversation_detail(agent, customer.conversation_id)
    contact_id = web["contact"]["id"]

    status, body = await agent.get("/api/invites/channels")
    assert (status, body) == (200, {"channels": ["telegram"]})
    status, body = await agent.post(f"/api/contacts/{contact_id}/invites", {"channel": "telegram"})
    assert status == 201, body
    invite = body["invite"]
    assert (invite["channel"], invite["inbox"]) == ("telegram", "support")
    token = start_token(invite["url"])
    await peer.post_webhook(u.command(ALEX, f"/start {token}"))
    await peer.wait_for("sendMessage")
    web = await conversation_detail(agent, customer.conversation_id)
    assert ("telegram", "7010") in {
        (i["channel"], i["address"]) for i in web["contact"]["identities"]
    }

    for path, request, code in [
        (f"/api/contacts/{contact_id}/invites", {"channel": "webchat"}, "no_invites"),
        (
            f"/api/contacts/{contact_id}/invites",
            {"channel": "telegram", "inbox": "x"},
            "unknown_inbox",
        ),
        ("/api/contacts/999999/invites", {"channel": "telegram"}, "unknown_contact"),
    ]:
        status, body = await agent.post(path, request)
        assert (status, body["error"]["code"]) == (404, code)
    status, body = await agent.post("/api/contacts/7x/invites", {"channel": "telegram"})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    assert body["error"]["detail"] == "not a contact id: '7x'"
