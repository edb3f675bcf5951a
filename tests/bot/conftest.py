"""The hub with the front-line bot on its web chat inbox, over real sockets and SQLite.

`inbox_rules` is the bot's configuration of the web chat inbox; a test overrides it with
`@pytest.mark.parametrize("inbox_rules", [{...}])`. The demo FAQ is imported before a test
starts, so the bot has articles to answer from.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api import create_app
from hub.api.app import DEMO_FAQ_TASK
from hub.config import Settings
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, Customer, next_frame

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def closed_all_day() -> list[str]:
    """Working hours that do not include today or tomorrow (UTC): closed for the whole test,
    whatever the clock says."""
    today = datetime.now(UTC).weekday()
    other = (today + 3) % 7
    return [f"{DAYS[other]} 09:00-17:00"]


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def database_url() -> str | None:
    return None  # SQLite; the storage paths the bot uses are covered on PostgreSQL elsewhere


@pytest.fixture
def inbox_rules() -> dict[str, Any]:
    return {}


@pytest.fixture
def bot_settings() -> dict[str, Any]:
    """Extra settings (e.g. the decision policy's margins) a test parametrizes."""
    return {}


@pytest.fixture
def settings(
    tmp_path: Path,
    database_url: str | None,
    inbox_rules: dict[str, Any],
    bot_settings: dict[str, Any],
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        demo=True,
        log_level="warning",
        demo_agent_email=AGENT_EMAIL,
        demo_agent_password=AGENT_PASSWORD,
        bot_enabled=True,
        bot_inboxes={"website": inbox_rules},
        **bot_settings,
    )


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    await asyncio.shield(client.app[DEMO_FAQ_TASK])  # the FAQ is in and indexed
    return client


async def bot_says(customer: Customer, timeout: float = 30) -> dict[str, Any]:
    """The next bot message the customer's socket receives."""
    assert customer.ws is not None
    return await next_frame(
        customer.ws, lambda f: f["type"] == "message" and f["author"] == "bot", timeout
    )


async def ask(customer: Customer, text: str, client_id: str) -> dict[str, Any]:
    """Say something and return the bot's answer."""
    ack = await customer.say(text, client_id)
    assert ack["type"] == "ack", ack
    return await bot_says(customer)
