"""A real `omnihub serve` is killed while a reply waits for its next attempt (the relay is
down); started again, it takes the backoff up where it stood, and the reply goes out once
when the relay answers again. The schedule is shortened through OMNIHUB_* settings."""

from __future__ import annotations

import asyncio
import json
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest

from tests.channels.email.conftest import ADDRESS, INBOX, inbox_options
from tests.channels.email.relay import Relay, until
from tests.support import Agent, HubProcess, free_port


async def start(env: dict[str, str], log: Path, port: int | None = None) -> HubProcess:
    hub = HubProcess(env=env) if port is None else HubProcess(env=env, port=port)
    hub.log_path = log
    await asyncio.to_thread(hub.start)
    return hub


def attempts_logged(log: Path, message_id: int) -> list[int]:
    """The attempt numbers of the outbox's WARNING lines about `message_id`, in order."""
    pattern = re.compile(rf"sending message {message_id} \(.*?\) failed, attempt (\d+):")
    return [int(m.group(1)) for m in pattern.finditer(log.read_text())]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("pg_database"))


async def test_a_restart_mid_backoff_resumes_it_and_sends_once(
    tmp_path: Path,
    database_url: str,
    processes: list[HubProcess],
    agent_http: aiohttp.ClientSession,
) -> None:
    relay = await Relay("down").start()
    listen = free_port()
    env = {
        "OMNIHUB_DATA_DIR": str(tmp_path / "data"),
        "OMNIHUB_DATABASE_URL": database_url,
        "OMNIHUB_DEMO": "1",
        "OMNIHUB_LOG_LEVEL": "warning",
        "OMNIHUB_REDIS_URL": "",
        "OMNIHUB_CHANNELS": json.dumps(
            {"email": {"inboxes": {INBOX: inbox_options(listen, relay.port)}}}
        ),
        "OMNIHUB_OUTBOX_RETRY_SECONDS": "0.1",
        "OMNIHUB_OUTBOX_RETRY": json.dumps({"email": {"max_retry": 0.3}}),
    }
    try:
        hub = await start(env, tmp_path / "before.log")
        processes.append(hub)
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = "ana@example.com", ADDRESS, "Refund?"
        mail.set_content("Where is my refund?")
        await aiosmtplib.send(mail, hostname="127.0.0.1", port=listen, start_tls=False)
        agent = await Agent(agent_http, hub.url).login()

        async def conversations() -> list[dict[str, Any]]:
            status, body = await agent.get("/api/conversations", channel="email")
            assert status == 200, body
            return list(body["conversations"])

        await until(conversations)
        [conv] = await conversations()
        status, body = await agent.post(
            f"/api/conversations/{conv['id']}/messages", {"text": "It is on its way."}
        )
        assert status == 201, body
        message_id = body["message"]["id"]

        await until(lambda: len(attempts_logged(tmp_path / "before.log", message_id)) >= 3)
        await asyncio.to_thread(hub.kill)  # mid-backoff, no goodbye
        before = attempts_logged(tmp_path / "before.log", message_id)
        assert before == list(range(1, len(before) + 1)), before

        await relay.set_mood("busy")
        hub = await start(env, tmp_path / "after.log", port=hub.port)
        processes.append(hub)
        await until(lambda: relay.tries["busy"] >= 1)
        await relay.set_mood("up")
        received = await relay.next(timeout=30)
        assert received.rcpt_tos == ["ana@example.com"]

        async def sent() -> bool:
            status, detail = await agent.get(f"/api/conversations/{conv['id']}")
            assert status == 200, detail
            [m] = [m for m in detail["messages"] if m["id"] == message_id]
            assert m["delivery_state"] != "failed", m
            return bool(m["delivery_state"] == "sent")

        await until(sent)
        after = attempts_logged(tmp_path / "after.log", message_id)
        # The count goes on from the stored schedule (an attempt cut off by the kill may be
        # stored without its log line); starting over would say "attempt 1".
        assert after and after[0] in (before[-1] + 1, before[-1] + 2), (before, after)
        assert relay.inbox.empty(), "the reply went out twice"
    finally:
        await relay.stop()
