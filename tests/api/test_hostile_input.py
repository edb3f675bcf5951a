"""Inputs a fuzzer found to give a 500: each one is a clear 4xx in the one error shape now,
with no traceback logged (on SQLite and PostgreSQL). The multipart part header with a
control character is in test_attachments.py with the other malformed uploads."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.support import Agent, Customer

TOO_BIG = str(2**63)  # one past the largest 64-bit database id


def deep(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


async def _error(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "detail"}, body
    return resp.status, body["error"]["code"]


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not logged, [r.getMessage() for r in logged]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/conversations", {"assignee": TOO_BIG}),
        ("/api/conversations", {"assignee": "9" * 40}),
        ("/api/conversations", {"limit": TOO_BIG}),
        (f"/api/conversations/{TOO_BIG}", {}),
    ],
)
async def test_integers_beyond_64_bits_are_refused(
    agent: Agent, path: str, params: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    async with agent.http.get(agent.base + path, params=params) as resp:
        status, _ = await _error(resp)
    assert status in (400, 422)
    _no_traceback(caplog)


async def test_integers_beyond_64_bits_in_a_body_are_refused(
    agent: Agent, customer: Customer, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/api/conversations/{customer.conversation_id}/assign"
    for raw in (TOO_BIG, "1e30", str(-(2**63) - 1)):
        async with agent.http.post(
            agent.base + path,
            data='{"agent_id": ' + raw + "}",
            headers={"X-CSRF-Token": agent.csrf, "Content-Type": "application/json"},
        ) as resp:
            assert await _error(resp) == (422, "validation_failed"), raw
    _no_traceback(caplog)


@pytest.mark.parametrize("depth", [100, 1025, 20_000])
async def test_deeply_nested_json_is_a_400(
    http: aiohttp.ClientSession, base_url: str, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with http.post(
        base_url + "/api/webchat/sessions",
        data=deep(depth),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert await _error(resp) == (400, "malformed_json")
    _no_traceback(caplog)
