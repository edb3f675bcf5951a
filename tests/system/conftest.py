"""Fixtures shared by the multi-process system tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from tests.support import HubProcess


@pytest.fixture
def processes() -> Iterator[list[HubProcess]]:
    """Every hub started by the test; stopped (or already dead) at the end."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.stop()


@pytest.fixture
async def sockets() -> AsyncIterator[list[aiohttp.ClientWebSocketResponse]]:
    """Websockets the test opened; closed at the end."""
    opened: list[aiohttp.ClientWebSocketResponse] = []
    yield opened
    for ws in opened:
        await ws.close()
