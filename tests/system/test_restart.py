"""Stop the hub mid-conversation (SIGKILL), start it again: nothing acknowledged is lost.

A real `python -m hub serve` process takes concurrent web chat traffic and agent replies,
is killed without warning while a further burst of messages is in flight, and is started
again on the same data (SQLite file or PostgreSQL database). Every message the hub acked
before dying must be in the history exactly once, with the id it was acked with; messages
that were cut off are resent with the same client_id as the protocol asks and are stored
once; the conversation carries on after the restart.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support import Agent, Customer, HubProcess, descendants, next_frame

CUSTOMERS = 3
MESSAGES = 50  # per customer, before the kill
BURST = 200  # per customer, in flight when the hub is killed
KILL_AFTER_ACKS = 30  # burst acks (over all customers) to wait for before pulling the plug
AGENT_REPLIES = 2  # per conversation, before the kill


# --- helpers ----------------------------------------------------------------------------------


@dataclass
class Chat:
    """One web chat customer and what the hub acknowledged to it."""

    customer: Customer
    ws: aiohttp.ClientWebSocketResponse
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    texts: dict[str, str] = field(default_factory=dict)  # client_id -> text, every frame sent
    order: list[str] = field(default_factory=list)  # client_ids in send order
    acked: dict[str, int] = field(default_factory=dict)  # client_id -> acked message_id
    errors: list[dict[str, Any]] = field(default_factory=list)  # error frames received
    replies: dict[int, str] = field(default_factory=dict)  # agent reply id -> text

    def frames(self, prefix: str, count: int) -> list[dict[str, Any]]:
        frames = []
        for i in range(count):
            client_id = f"{prefix}-{i}"
            text = f"{prefix} message {i} of customer {self.run}"
            self.texts[client_id] = text
            self.order.append(client_id)
            frames.append({"type": "message", "client_id": client_id, "text": text})
        return frames

    @property
    def unacked(self) -> list[str]:
        return [c for c in self.order if c not in self.acked]


async def pump(ws: aiohttp.ClientWebSocketResponse, frames: list[dict[str, Any]], chat: Chat,
               on_ack: Callable[[], None] | None = None) -> None:
    """Send every frame without waiting for acks; record acks until all came or the socket ended."""

    async def send() -> None:
        for frame in frames:
            try:
                await ws.send_json(frame)
            except (ConnectionError, aiohttp.ClientError):
                return  # the hub died under us: the rest stays unacked

    sender = asyncio.create_task(send())
    wanted = {f["client_id"] for f in frames}
    try:
        while wanted - chat.acked.keys():
            msg = await ws.receive()
            if msg.type != aiohttp.WSMsgType.TEXT:
                return  # closed or broken: whatever was acked so far is what counts
            frame = msg.json()
            if frame.get("type") == "ack":
                client_id = frame["client_id"]
                assert client_id in wanted, f"ack for a message never sent: {frame}"
                previous = chat.acked.setdefault(client_id, frame["message_id"])
                assert previous == frame["message_id"], f"{client_id} acked twice with two ids"
                if on_ack is not None:
                    on_ack()
            elif frame.get("type") == "error":
                chat.errors.append(frame)
    finally:
        await asyncio.gather(sender, return_exceptions=True)


async def start_hub(env: dict[str, str], log: Path, port: int | None = None) -> HubProcess:
    hub = HubProcess(env=env) if port is None else HubProcess(env=env, port=port)
    hub.log_path = log
    await asyncio.to_thread(hub.start)
    return hub


def is_message(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("type") == "message" and frame.get("text") == text


def customer_messages(history: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in history["messages"] if m["author"] == "customer"]


def assert_nothing_acked_is_lost(chat: Chat, history: dict[str, Any]) -> None:
    assert history["conversation_id"] == chat.customer.conversation_id
    mine = customer_messages(history)
    client_ids = [m["client_id"] for m in mine]
    duplicated = sorted({c for c in client_ids if client_ids.count(c) > 1})
    assert not duplicated, f"stored more than once after the restart: {duplicated}"
    ids = [m["message_id"] for m in history["messages"]]
    assert len(ids) == len(set(ids)), "the history lists a message id twice"

    by_client_id = {m["client_id"]: m for m in mine}
    lost = [c for c in chat.acked if c not in by_client_id]
    assert not lost, f"{len(lost)} acknowledged messages lost by the restart, e.g. {lost[:5]}"
    for client_id, message_id in chat.acked.items():
        stored = by_client_id[client_id]
        assert (stored["message_id"], stored["text"]) == (message_id, chat.texts[client_id]), (
            f"{client_id} was acked as message {message_id} but the history has {stored}"
        )
    unknown = [c for c in by_client_id if c not in chat.texts]
    assert not unknown, f"the history has customer messages nobody sent: {unknown}"

    # One socket's messages are handled in order, so acked ones keep their send order.
    acked_in_history = [c for c in client_ids if c in chat.acked]
    assert acked_in_history == [c for c in chat.order if c in chat.acked], "order changed"

    replies = {m["message_id"]: m["text"] for m in history["messages"] if m["author"] == "agent"}
    for reply_id, text in chat.replies.items():
        assert replies.get(reply_id) == text, f"agent reply {reply_id} {text!r} lost: {replies}"


async def check_after_restart(chat: Chat, resumed: Customer, agent: Agent,
                              sockets: list[aiohttp.ClientWebSocketResponse]) -> None:
    await resumed.start(token=chat.customer.token)
    assert resumed.conversation_id == chat.customer.conversation_id, "resume changed conversation"
    history = await resumed.history()
    assert_nothing_acked_is_lost(chat, history)
    stored_before_resend = {m["client_id"]: m["message_id"] for m in customer_messages(history)}

    # The client resends what was never acked, with the same client_ids: stored once.
    ws = await resumed.connect()
    sockets.append(ws)
    resend = [{"type": "message", "client_id": c, "text": chat.texts[c]} for c in chat.unacked]
    async with asyncio.timeout(60):
        await pump(ws, resend, chat)
    assert not chat.errors, f"resend refused: {chat.errors[:3]}"
    assert not chat.unacked, f"{len(chat.unacked)} resent messages not acked after the restart"
    for client_id, message_id in stored_before_resend.items():
        assert chat.acked[client_id] == message_id, (
            f"{client_id} was stored as {message_id} before the kill but the resend was "
            f"acked as {chat.acked[client_id]}: a duplicate")
    history = await resumed.history()
    assert_nothing_acked_is_lost(chat, history)
    assert len(customer_messages(history)) == MESSAGES + BURST

    # The conversation carries on: a new message reaches the agent...
    text = f"after the restart {chat.run}"
    ack = await resumed.say(text, "after-restart-1")
    assert ack["type"] == "ack", ack
    status, detail = await agent.get(f"/api/conversations/{chat.customer.conversation_id}")
    assert status == 200, f"the agent's session did not survive the restart: {detail}"
    found = [(m["id"], m["text"]) for m in detail["messages"] if m["author"] == "customer"]
    assert (ack["message_id"], text) in found, "the message sent after the restart is missing"

    # ...and an agent reply reaches the customer's new socket.
    text = f"welcome back {chat.run}"
    status, body = await agent.post(
        f"/api/conversations/{chat.customer.conversation_id}/messages", {"text": text})
    assert status == 201, body
    frame = await next_frame(ws, is_message(text))
    assert (frame["author"], frame["message_id"]) == ("agent", body["message"]["id"])


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def hub_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {
        "OMNIHUB_DATA_DIR": str(tmp_path / "data"),
        "OMNIHUB_DEMO": "1",
        "OMNIHUB_LOG_LEVEL": "warning",
        "OMNIHUB_REDIS_URL": "",
        "OMNIHUB_WEBCHAT_RATE_PER_S": "0",  # the flood guard is not under test here
    }
    # SQLite: the default file in the data directory. PostgreSQL: the session's database,
    # shared with other tests, so only this test's own conversations are looked at.
    sqlite = request.param == "sqlite"
    env["OMNIHUB_DATABASE_URL"] = "" if sqlite else request.getfixturevalue("pg_database")
    return env


# --- the test ---------------------------------------------------------------------------------


async def test_sigkill_mid_conversation_loses_nothing_acknowledged(
    hub_env: dict[str, str], tmp_path: Path, processes: list[HubProcess],
    sockets: list[aiohttp.ClientWebSocketResponse],
    http: aiohttp.ClientSession, agent_http: aiohttp.ClientSession,
) -> None:
    hub = await start_hub(hub_env, tmp_path / "hub-before.log")
    processes.append(hub)
    agent = await Agent(agent_http, hub.url).login()
    chats = []
    for _ in range(CUSTOMERS):
        customer = await Customer(http, hub.url).start()
        chats.append(Chat(customer, await customer.connect()))
        sockets.append(chats[-1].ws)

    # 1. Concurrent traffic on three sockets; every message is acked.
    async with asyncio.timeout(60):
        await asyncio.gather(*(pump(c.ws, c.frames("first", MESSAGES), c) for c in chats))
    for chat in chats:
        assert not chat.errors, f"refused before the kill: {chat.errors[:3]}"
        assert len(chat.acked) == MESSAGES, f"only {len(chat.acked)} of {MESSAGES} acked"

    # 2. The agent answers each conversation a few times (201 = stored).
    for chat in chats:
        for n in range(AGENT_REPLIES):
            text = f"agent reply {n} to {chat.run}"
            status, body = await agent.post(
                f"/api/conversations/{chat.customer.conversation_id}/messages", {"text": text})
            assert status == 201, body
            chat.replies[body["message"]["id"]] = text

    # 3. A burst on every socket; SIGKILL once part of it has been acked.
    burst_acks = 0
    enough = asyncio.Event()

    def count_ack() -> None:
        nonlocal burst_acks
        burst_acks += 1
        if burst_acks >= KILL_AFTER_ACKS:
            enough.set()

    pumps = [asyncio.create_task(pump(c.ws, c.frames("burst", BURST), c, count_ack))
             for c in chats]
    try:
        async with asyncio.timeout(30):
            await enough.wait()
        # The storage writer process is busy with the burst; kill() also checks that it
        # exits by itself once the hub is gone.
        assert hub.proc is not None and descendants(hub.proc.pid), "no storage writer process"
        hub.kill()
        async with asyncio.timeout(30):
            await asyncio.gather(*pumps)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
    cut_off = sum(len(c.unacked) for c in chats)
    assert cut_off > 0, "the whole burst was acked before the kill: nothing was in flight"
    for chat in chats:
        assert not chat.errors, f"refused during the burst: {chat.errors[:3]}"
        await chat.ws.close()

    # 4. Start again on the same data (same port, so the clients' URLs still hold).
    hub = await start_hub(hub_env, tmp_path / "hub-after.log", port=hub.port)
    processes.append(hub)

    for chat in chats:
        await check_after_restart(chat, Customer(http, hub.url), agent, sockets)
