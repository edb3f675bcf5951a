"""Customer -> agent -> customer over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from hub.api.keys import CONVERSATIONS, OUTBOX, STORE
from hub.errors import NotFound
from hub.model import Identity, InboundMessage, Message
from tests.support import Agent, Customer, next_frame


def _is_message_event(frame: dict, conv_id: int) -> bool:
    return frame.get("kind") == "message.created" and frame.get("conversation_id") == conv_id


async def test_full_exchange(customer: Customer, agent: Agent) -> None:
    events = await agent.events()
    ws = await customer.connect()

    ack = await customer.say("Hello, my parcel is late", "c-1")
    assert ack["type"] == "ack" and isinstance(ack["message_id"], int)

    seen = await next_frame(events, lambda f: _is_message_event(f, customer.conversation_id))
    msg = seen["data"]["message"]
    assert (msg["id"], msg["author"], msg["text"]) == (
        ack["message_id"],
        "customer",
        "Hello, my parcel is late",
    )

    status, listing = await agent.get("/api/conversations", status="queued")
    assert status == 200
    assert customer.conversation_id in [c["id"] for c in listing["conversations"]]

    status, body = await agent.post(
        f"/api/conversations/{customer.conversation_id}/messages",
        {"text": "Sorry about that, let me check."},
    )
    assert status == 201, body
    reply = await next_frame(ws, lambda f: f["type"] == "message")
    assert reply["author"] == "agent"
    assert reply["text"] == "Sorry about that, let me check."
    assert reply["author_name"] == "Demo Agent"

    # Replying took the conversation; the first response time is recorded.
    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    assert detail["conversation"]["status"] == "assigned"
    assert detail["conversation"]["assignee_id"] == agent.id
    assert detail["conversation"]["first_response_at"] is not None
    assert [m["author"] for m in detail["messages"]] == ["customer", "agent"]
    assert detail["contact"]["identities"][0]["channel"] == "webchat"
    await events.close()
    await ws.close()


async def test_resume_with_history(
    customer: Customer, http: aiohttp.ClientSession, base_url: str, agent: Agent
) -> None:
    await customer.connect()
    await customer.say("first", "a")
    await customer.say("second", "b")
    await agent.post(f"/api/conversations/{customer.conversation_id}/messages", {"text": "third"})
    assert customer.ws is not None
    await customer.ws.close()

    again = await Customer(http, base_url).start(token=customer.token)
    assert again.conversation_id == customer.conversation_id
    history = await again.history()
    assert [(m["author"], m["text"]) for m in history["messages"]] == [
        ("customer", "first"),
        ("customer", "second"),
        ("agent", "third"),
    ]
    assert [m["client_id"] for m in history["messages"]] == ["a", "b", None]


async def test_resend_same_client_id_is_one_message(customer: Customer, agent: Agent) -> None:
    await customer.connect()
    first = await customer.say("only once", "dup-1")
    second = await customer.say("only once", "dup-1")
    assert first["message_id"] == second["message_id"]
    history = await customer.history()
    assert [m["text"] for m in history["messages"]] == ["only once"]
    # a reconnect does not change that
    assert customer.ws is not None
    await customer.ws.close()
    await customer.connect()
    third = await customer.say("only once", "dup-1")
    assert third["message_id"] == first["message_id"]


async def test_typing_reaches_the_other_side(customer: Customer, agent: Agent) -> None:
    events = await agent.events()
    ws = await customer.connect()
    await ws.send_json({"type": "typing"})
    frame = await next_frame(events, lambda f: f["type"] == "typing")
    assert frame == {
        "type": "typing",
        "conversation_id": customer.conversation_id,
        "author": "customer",
    }
    await events.send_json({"type": "typing", "conversation_id": customer.conversation_id})
    assert await next_frame(ws, lambda f: f["type"] == "typing") == {
        "type": "typing",
        "author": "agent",
    }


async def test_lifecycle_resolve_reopen_and_customer_reopens(
    customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    await customer.say("help", "1")
    cid = customer.conversation_id
    status, body = await agent.post(f"/api/conversations/{cid}/assign")
    assert status == 200 and body["conversation"]["status"] == "assigned"
    status, body = await agent.post(f"/api/conversations/{cid}/resolve")
    assert status == 200 and body["conversation"]["status"] == "resolved"
    assert body["conversation"]["resolved_at"] is not None
    status, body = await agent.post(f"/api/conversations/{cid}/resolve")
    assert status == 409 and body["error"]["code"] == "invalid_transition"
    status, body = await agent.post(f"/api/conversations/{cid}/reopen")
    assert status == 200 and body["conversation"]["status"] == "assigned"
    await agent.post(f"/api/conversations/{cid}/resolve")
    # The customer writing again reopens it, back to the same agent.
    await customer.say("one more thing", "2")
    status, detail = await agent.get(f"/api/conversations/{cid}")
    assert detail["conversation"]["status"] == "assigned"
    assert detail["conversation"]["assignee_id"] == agent.id
    status, mine = await agent.get("/api/conversations", assignee="me")
    assert [c["id"] for c in mine["conversations"]] == [cid]


async def test_every_change_is_in_the_event_log(customer: Customer, agent: Agent, hub: Any) -> None:
    await customer.connect()
    await customer.say("log me", "1")
    cid = customer.conversation_id
    await agent.post(f"/api/conversations/{cid}/messages", {"text": "logged"})
    await hub.server.app[OUTBOX].drain()  # the web chat send is recorded asynchronously
    await agent.post(f"/api/conversations/{cid}/resolve")
    events = await hub.server.app[STORE].read(lambda uow: uow.events(cid))
    assert [(e.kind.value, e.actor_kind.value) for e in events] == [
        ("conversation.created", "system"),
        ("message.created", "customer"),
        ("message.created", "agent"),
        ("conversation.updated", "agent"),  # queued -> assigned by the reply
        ("message.delivery", "system"),  # handed to the web chat
        ("conversation.updated", "agent"),  # resolved
    ]
    assert events[3].payload["changes"]["status"] == ["queued", "assigned"]
    assert events[5].payload["changes"]["status"] == ["assigned", "resolved"]


async def test_other_conversations_of_the_contact(
    customer: Customer, agent: Agent, hub: Any
) -> None:
    await customer.connect()
    await customer.say("first contact", "1")
    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    identity = detail["contact"]["identities"][0]
    # The same person writes to another inbox: a second conversation of the same contact.
    await hub.server.app[CONVERSATIONS].receive(
        InboundMessage(
            channel="webchat",
            inbox="shop-2",
            text="hello from the other shop",
            sender=Identity(identity["channel"], identity["address"]),
            channel_message_id="x-1",
        )
    )
    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    assert status == 200
    assert [o["inbox"] for o in detail["other_conversations"]] == ["shop-2"]
    assert detail["other_conversations"][0]["last_message"]["text"] == "hello from the other shop"


async def test_concurrent_resends_from_two_sockets_are_one_message_each(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    """Many customers at once, each resending one client_id from two tabs at the same moment:
    however the hub groups them into commits, each customer gets one stored message."""
    customers = [await Customer(http, base_url).start() for _ in range(20)]
    tabs = [
        (c, await c.http.ws_connect(f"{base_url}/api/webchat/ws?token={c.token}"))
        for c in customers
        for _ in range(2)
    ]
    for n, (_, ws) in enumerate(tabs):
        await ws.send_json({"type": "message", "client_id": "same", "text": f"hello {n // 2}"})
    acks = await asyncio.gather(
        *(next_frame(ws, lambda f: f.get("type") in ("ack", "error")) for _, ws in tabs)
    )
    assert all(a["type"] == "ack" for a in acks), acks
    ids = [a["message_id"] for a in acks]
    assert ids[0::2] == ids[1::2]
    assert len(set(ids)) == len(customers)
    for n, c in enumerate(customers):
        history = await c.history()
        assert [(m["message_id"], m["text"]) for m in history["messages"]] == [
            (ids[2 * n], f"hello {n}")
        ]
    for _, ws in tabs:
        await ws.close()


async def test_a_message_for_an_unknown_conversation_fails_alone(
    customer: Customer, hub: Any
) -> None:
    service = hub.server.app[CONVERSATIONS]

    def inbound(n: int, conversation_id: int) -> InboundMessage:
        return InboundMessage(
            channel="webchat",
            inbox="default",
            text=f"burst {n}",
            sender=Identity("webchat", "someone"),
            channel_message_id=f"burst-{n}",
            conversation_id=conversation_id,
        )

    results = await asyncio.gather(
        *(service.receive(inbound(n, customer.conversation_id)) for n in range(5)),
        service.receive(inbound(5, 987654321)),
        *(service.receive(inbound(n, customer.conversation_id)) for n in range(6, 10)),
        return_exceptions=True,
    )
    assert isinstance(results[5], NotFound) and results[5].code == "unknown_conversation"
    stored = [r for i, r in enumerate(results) if i != 5]
    assert all(isinstance(m, Message) for m in stored), stored
    history = await customer.history()
    assert [m["text"] for m in history["messages"]] == [f"burst {n}" for n in range(10) if n != 5]
