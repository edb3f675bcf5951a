"""Two hub processes on one PostgreSQL database: Redis carries live events between them.

The customer talks to node A, the agent works on node B. With OMNIHUB_REDIS_URL set on both,
messages and typing cross between the nodes in both directions. Without it, B's agent socket
hears nothing of A (while the shared database still has the message): the live path is Redis.

Texts carry a random marker: other test runs may publish on the same Redis channel.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from tests.support import REDIS_URL, Agent, Customer, HubProcess, next_frame

NO_EVENT_WAIT = 2.0  # seconds the agent on B listens for an event that must not come


# --- helpers ----------------------------------------------------------------------------------


def require_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis at {url} is unreachable, so the two-node tests cannot run "
            f"(start it with `make services`, or point OMNIHUB_TEST_REDIS_URL at one): {exc}"
        )
    finally:
        client.close()


def node_env(tmp_path: Path, name: str, database_url: str, redis_url: str,
             demo: bool) -> dict[str, str]:
    return {
        "OMNIHUB_DATA_DIR": str(tmp_path / name),
        "OMNIHUB_DATABASE_URL": database_url,
        "OMNIHUB_REDIS_URL": redis_url,  # "" = unset: a process-local event bus
        "OMNIHUB_DEMO": "1" if demo else "0",
        "OMNIHUB_LOG_LEVEL": "warning",
    }


def message_event(text: str) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        return (frame.get("type") == "event" and frame.get("kind") == "message.created"
                and frame["data"]["message"]["text"] == text)
    return match


def agent_message(text: str) -> Callable[[dict[str, Any]], bool]:
    def match(frame: dict[str, Any]) -> bool:
        return frame.get("type") == "message" and frame.get("text") == text
    return match


async def assert_no_frame(ws: aiohttp.ClientWebSocketResponse,
                          match: Callable[[dict[str, Any]], bool], why: str) -> None:
    """Bounded wait: nothing matching arrives within NO_EVENT_WAIT seconds."""
    try:
        frame = await next_frame(ws, match, timeout=NO_EVENT_WAIT)
    except TimeoutError:
        return
    raise AssertionError(f"{why}, yet it arrived: {frame}")


@dataclass
class Nodes:
    a: HubProcess
    b: HubProcess


async def start_nodes(tmp_path: Path, database_url: str, redis_url: str,
                      started: list[HubProcess]) -> Nodes:
    """A first (it seeds the demo agent into the shared database), then B without the seed."""
    nodes = []
    for name, demo in (("a", True), ("b", False)):
        hub = HubProcess(env=node_env(tmp_path, name, database_url, redis_url, demo))
        hub.log_path = tmp_path / f"node-{name}.log"
        started.append(hub)
        await asyncio.to_thread(hub.start)
        nodes.append(hub)
    return Nodes(*nodes)


# --- tests ------------------------------------------------------------------------------------


async def test_events_cross_nodes_through_redis(
    tmp_path: Path, pg_database: str, processes: list[HubProcess],
    sockets: list[aiohttp.ClientWebSocketResponse],
    http: aiohttp.ClientSession, agent_http: aiohttp.ClientSession,
) -> None:
    require_redis(REDIS_URL)
    nodes = await start_nodes(tmp_path, pg_database, REDIS_URL, processes)
    marker = uuid.uuid4().hex[:8]

    agent = await Agent(agent_http, nodes.b.url).login()  # seeded by A, shared database
    events = await agent.events()
    sockets.append(events)
    customer = await Customer(http, nodes.a.url).start()
    cid = customer.conversation_id
    ws = await customer.connect()
    sockets.append(ws)

    created = await next_frame(events, lambda f: f.get("kind") == "conversation.created"
                               and f.get("conversation_id") == cid)
    assert created["data"]["conversation"]["id"] == cid

    # customer on A -> agent on B
    text = f"hello from node A {marker}"
    ack = await customer.say(text, "c-1")
    assert ack["type"] == "ack", ack
    seen = await next_frame(events, message_event(text))
    assert seen["conversation_id"] == cid
    assert (seen["data"]["message"]["id"], seen["data"]["message"]["author"]) == (
        ack["message_id"], "customer")

    # agent on B -> customer on A
    reply = f"hello from node B {marker}"
    status, body = await agent.post(f"/api/conversations/{cid}/messages", {"text": reply})
    assert status == 201, body
    frame = await next_frame(ws, agent_message(reply))
    assert (frame["author"], frame["message_id"], frame["author_name"]) == (
        "agent", body["message"]["id"], "Demo Agent")

    # typing, both ways
    await ws.send_json({"type": "typing"})
    typing = await next_frame(events, lambda f: f.get("type") == "typing"
                              and f.get("conversation_id") == cid)
    assert typing["author"] == "customer"
    await events.send_json({"type": "typing", "conversation_id": cid})
    typing = await next_frame(ws, lambda f: f.get("type") == "typing")
    assert typing == {"type": "typing", "author": "agent"}


async def test_without_redis_events_stay_on_their_node(
    tmp_path: Path, pg_database: str, processes: list[HubProcess],
    sockets: list[aiohttp.ClientWebSocketResponse],
    http: aiohttp.ClientSession, agent_http: aiohttp.ClientSession,
) -> None:
    nodes = await start_nodes(tmp_path, pg_database, "", processes)
    marker = uuid.uuid4().hex[:8]

    agent = await Agent(agent_http, nodes.b.url).login()
    events = await agent.events()
    sockets.append(events)
    customer = await Customer(http, nodes.a.url).start()
    cid = customer.conversation_id
    ws = await customer.connect()
    sockets.append(ws)

    text = f"nobody on node B hears this live {marker}"
    ack = await customer.say(text, "c-1")
    assert ack["type"] == "ack", ack
    await assert_no_frame(events, message_event(text),
                          "without OMNIHUB_REDIS_URL node B must not get node A's events")

    # The database is shared: B reads the message...
    status, detail = await agent.get(f"/api/conversations/{cid}")
    assert status == 200, detail
    assert (ack["message_id"], text) in [(m["id"], m["text"]) for m in detail["messages"]]

    # ...B's socket is alive (it hears B's own events), but A's customer hears nothing live.
    reply = f"only node B knows this live {marker}"
    status, body = await agent.post(f"/api/conversations/{cid}/messages", {"text": reply})
    assert status == 201, body
    await next_frame(events, message_event(reply))
    await assert_no_frame(ws, agent_message(reply),
                          "without OMNIHUB_REDIS_URL the customer on node A must not get B's reply")
    history = await customer.history()
    assert (body["message"]["id"], "agent", reply) in [
        (m["message_id"], m["author"], m["text"]) for m in history["messages"]]
