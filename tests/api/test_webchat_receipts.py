"""Web chat delivery and read receipts, the limit in the session, and the protocol's refusals
(docs/webchat-protocol.md), over real sockets on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from hub.api.keys import STORE
from hub.model import DeliveryState
from tests.support import Agent, Customer, next_frame


def _delivery(conv_id: int, state: str) -> Any:
    def match(frame: dict[str, Any]) -> bool:
        return (
            frame.get("kind") == "message.delivery"
            and frame.get("conversation_id") == conv_id
            and frame["data"]["message"]["delivery_state"] == state
        )

    return match


async def _states(agent: Agent, conv_id: int) -> list[tuple[str, str]]:
    status, detail = await agent.get(f"/api/conversations/{conv_id}")
    assert status == 200, detail
    return [(m["author"], m["delivery_state"]) for m in detail["messages"]]


async def test_the_session_tells_the_widget_the_text_limit(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    async with http.post(base_url + "/api/webchat/sessions", json={}) as resp:
        assert resp.status == 201
        first = await resp.json()
    assert first["max_text_chars"] == 10_000
    resumed = {"token": first["token"]}
    async with http.post(base_url + "/api/webchat/sessions", json=resumed) as resp:
        assert resp.status == 200
        assert (await resp.json())["max_text_chars"] == 10_000


async def test_a_short_bogus_resume_token_is_invalid_not_malformed(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    for token in ("abc", "x" * 15, "y" * 40):
        async with http.post(base_url + "/api/webchat/sessions", json={"token": token}) as resp:
            assert resp.status == 401, token
            assert (await resp.json())["error"]["code"] == "invalid_token"


async def test_an_oversized_frame_is_answered_before_any_close(customer: Customer) -> None:
    ws = await customer.connect()
    await ws.send_str('{"type": "message", "client_id": "big", "text": "' + "x" * 70_000 + '"}')
    error = await next_frame(ws)
    assert (error["type"], error["code"]) == ("error", "frame_too_large")
    # Multi-byte text counts in bytes: 30,000 Chinese characters are about 90 KB.
    await ws.send_str('{"type": "message", "client_id": "zh", "text": "' + "长" * 30_000 + '"}')
    assert (await next_frame(ws))["code"] == "frame_too_large"
    # The socket stays usable, and nothing was stored.
    ack = await customer.say("still here", "c-1")
    assert ack["type"] == "ack"
    assert [m["text"] for m in (await customer.history())["messages"]] == ["still here"]


async def test_replies_become_delivered_then_read_in_one_write_each(
    customer: Customer, agent: Agent
) -> None:
    conv = customer.conversation_id
    ws = await customer.connect()
    events = await agent.events()
    await customer.say("Where is my parcel?", "c-1")
    for text in ("Let me look.", "It left the warehouse today."):
        status, body = await agent.post(f"/api/conversations/{conv}/messages", {"text": text})
        assert status == 201, body
    replies = [await next_frame(ws, lambda f: f["type"] == "message") for _ in range(2)]
    newest = replies[-1]["message_id"]

    await ws.send_json({"type": "delivered", "up_to": newest})
    await next_frame(events, _delivery(conv, "delivered"))
    await next_frame(events, _delivery(conv, "delivered"))
    assert await _states(agent, conv) == [
        ("customer", "delivered"),
        ("agent", "delivered"),
        ("agent", "delivered"),
    ]
    # Read up to the first only: the second stays delivered.
    await ws.send_json({"type": "read", "up_to": replies[0]["message_id"]})
    seen = await next_frame(events, _delivery(conv, "read"))
    assert seen["data"]["message"]["id"] == replies[0]["message_id"]
    await ws.send_json({"type": "read", "up_to": newest})
    await next_frame(events, _delivery(conv, "read"))
    assert await _states(agent, conv) == [
        ("customer", "delivered"),
        ("agent", "read"),
        ("agent", "read"),
    ]
    # A receipt that adds nothing, and a malformed one.
    await ws.send_json({"type": "delivered", "up_to": newest})
    await ws.send_json({"type": "read", "up_to": "all"})
    error = await next_frame(ws, lambda f: f["type"] == "error")
    assert error["code"] == "invalid_frame"
    assert await _states(agent, conv) == [
        ("customer", "delivered"),
        ("agent", "read"),
        ("agent", "read"),
    ]
    await events.close()


async def test_a_late_send_record_does_not_take_a_receipt_back(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    conv = customer.conversation_id
    ws = await customer.connect()
    status, body = await agent.post(f"/api/conversations/{conv}/messages", {"text": "Hi"})
    assert status == 201
    reply_id = body["message"]["id"]
    await next_frame(ws, lambda f: f["type"] == "message")
    events = await agent.events()
    await ws.send_json({"type": "read", "up_to": reply_id})
    await next_frame(events, _delivery(conv, "read"))
    store = hub.server.app[STORE]
    # The outbox records its send after the widget's receipt (the order is a race live).
    await store.write(lambda uow: uow.set_delivery_state(reply_id, DeliveryState.SENT))
    assert await _states(agent, conv) == [("agent", "read")]
    await events.close()


async def test_an_agent_reading_shows_seen_to_the_customer(
    customer: Customer, agent: Agent, http: aiohttp.ClientSession, base_url: str
) -> None:
    conv = customer.conversation_id
    ws = await customer.connect()
    first = (await customer.say("one", "c-1"))["message_id"]
    second = (await customer.say("two", "c-2"))["message_id"]
    third = (await customer.say("three", "c-3"))["message_id"]

    status, _ = await agent.post(f"/api/conversations/{conv}/read", {"up_to": second})
    assert status == 204
    seen = [await next_frame(ws, lambda f: f["type"] == "delivery") for _ in range(2)]
    assert sorted(f["message_id"] for f in seen) == [first, second]
    assert {f["state"] for f in seen} == {"read"}
    states = [(m["client_id"], m["delivery_state"]) for m in (await customer.history())["messages"]]
    assert states == [("c-1", "read"), ("c-2", "read"), ("c-3", "delivered")]
    status, _ = await agent.post(f"/api/conversations/{conv}/read", {"up_to": third})
    assert status == 204
    assert (await next_frame(ws, lambda f: f["type"] == "delivery"))["message_id"] == third

    # Refusals in the one error shape.
    status, body = await agent.post("/api/conversations/999999/read", {"up_to": 1})
    assert (status, body["error"]["code"]) == (404, "unknown_conversation")
    for bad in ({}, {"up_to": 0}, {"up_to": "x"}, {"up_to": 1, "more": 1}, {"up_to": 2**63}):
        status, body = await agent.post(f"/api/conversations/{conv}/read", bad)
        assert status == 422, bad
    async with agent.http.post(
        base_url + f"/api/conversations/{conv}/read", json={"up_to": 1}
    ) as resp:  # no CSRF header
        assert resp.status == 403
    async with http.post(base_url + f"/api/conversations/{conv}/read", json={"up_to": 1}) as resp:
        assert resp.status == 401
