"""The hub with the Telegram channel, talking to a real Bot API stand-in (peer.py) on loopback.

`inbox_options` is the `support` inbox's configuration (webhook mode by default), `telegram_extra`
adds channel-wide options; a test overrides either with `@pytest.mark.parametrize`. The hub
serves on a port chosen up front so its public URL (the webhook address) is known before it
starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from channels.telegram import TelegramChannel
from hub.api import create_app
from hub.api.keys import OUTBOX
from hub.config import Settings
from tests.channels.telegram.peer import TOKEN, BotApiPeer
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, Agent, free_port

T = TypeVar("T")
INBOX = "support"


@pytest.fixture
async def peer() -> AsyncIterator[BotApiPeer]:
    server = await BotApiPeer().start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
def inbox_options() -> dict[str, Any]:
    return {}


@pytest.fixture
def telegram_extra() -> dict[str, Any]:
    return {}


@pytest.fixture
def bot_inboxes() -> dict[str, Any] | None:
    """The front-line bot's rules per inbox; None keeps the bot off."""
    return None


@pytest.fixture
def hub_port() -> int:
    return free_port()


@pytest.fixture
def settings(
    tmp_path: Path,
    peer: BotApiPeer,
    hub_port: int,
    inbox_options: dict[str, Any],
    telegram_extra: dict[str, Any],
    bot_inboxes: dict[str, Any] | None,
) -> Settings:
    telegram = {
        "inboxes": {INBOX: {"token": TOKEN, **inbox_options}},
        "base_url": peer.base_url,
        "base_file_url": peer.base_file_url,
        **telegram_extra,
    }
    return Settings(
        data_dir=tmp_path / "data",
        public_url=f"http://127.0.0.1:{hub_port}",
        demo=True,
        log_level="warning",
        demo_agent_email=AGENT_EMAIL,
        demo_agent_password=AGENT_PASSWORD,
        bot_enabled=False,
        bot_inboxes=bot_inboxes or {},
        channels={"telegram": telegram},
        outbox_retry_seconds=0.2,
    )


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Settings, hub_port: int) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings), server_kwargs={"port": hub_port}
    )
    return client


@pytest.fixture
def channel(hub: TestClient[Any, Any]) -> TelegramChannel:
    found = hub.app[OUTBOX].channels["telegram"]
    assert isinstance(found, TelegramChannel)
    return found


@pytest.fixture
async def ready(channel: TelegramChannel) -> TelegramChannel:
    """The hub with its bot connected (getMe done, webhook set or polling started)."""
    async with asyncio.timeout(20):
        await channel.bots[INBOX].ready.wait()
    return channel


@pytest.fixture
async def agent(hub: TestClient[Any, Any]) -> AsyncIterator[Agent]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield await Agent(http, str(hub.make_url("")).rstrip("/")).login()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], timeout: float = 20, every: float = 0.05
) -> T:
    """The first truthy result of `probe`, polled until `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            found = await probe()
            if found:
                return found
            await asyncio.sleep(every)


async def telegram_conversations(agent: Agent) -> list[dict[str, Any]]:
    status, body = await agent.get("/api/conversations", channel="telegram")
    assert status == 200, body
    return list(body["conversations"])


async def conversation_detail(agent: Agent, conversation_id: int) -> dict[str, Any]:
    status, body = await agent.get(f"/api/conversations/{conversation_id}")
    assert status == 200, body
    return dict(body)


async def only_conversation(agent: Agent) -> dict[str, Any]:
    """The one Telegram conversation (waiting for it), in full."""
    convs = await eventually(lambda: telegram_conversations(agent))
    assert len(convs) == 1, convs
    return await conversation_detail(agent, convs[0]["id"])
