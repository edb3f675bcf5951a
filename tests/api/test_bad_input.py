"""Every endpoint answers bad input with a stable error code and a 4xx, never a 500, and
writes nothing half-way; a websocket that receives garbage says so and stays usable."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest

from hub.api import create_app
from hub.api.keys import STORE
from hub.config import Settings
from tests.support import Agent, Customer, next_frame


async def _error(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "detail"}, body
    assert body["error"]["detail"]
    return resp.status, body["error"]["code"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", (400, "malformed_json")),
        (b"[1, 2]", (400, "malformed_json")),
        (b'"text"', (400, "malformed_json")),
        (b'{"token": 42}', (422, "validation_failed")),
        (b'{"language": "klingon"}', (422, "validation_failed")),
        (b'{"unknown_field": 1}', (422, "validation_failed")),
        (b'{"token": "short"}', (401, "invalid_token")),  # any wrong token, any length
        (b'{"token": "' + b"x" * 40 + b'"}', (401, "invalid_token")),
        (b'{"name": "' + b"n" * 300 + b'"}', (422, "validation_failed")),
        (b"\xff\xfe\x00", (400, "malformed_json")),
    ],
)
async def test_session_endpoint_rejects(
    http: aiohttp.ClientSession, base_url: str, body: bytes, expected: tuple[int, str]
) -> None:
    async with http.post(
        base_url + "/api/webchat/sessions", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        assert await _error(resp) == expected


async def test_oversized_body(http: aiohttp.ClientSession, base_url: str) -> None:
    big = io.BytesIO(b"{" + b" " * 2_000_000 + b"}")
    async with http.post(
        base_url + "/api/webchat/sessions", data=big, headers={"Content-Type": "application/json"}
    ) as resp:
        assert (await _error(resp))[0] == 413


async def test_history_and_socket_need_a_valid_token(
    http: aiohttp.ClientSession, base_url: str, customer: Customer
) -> None:
    async with http.get(base_url + "/api/webchat/history") as resp:
        assert await _error(resp) == (422, "validation_failed")
    async with http.get(base_url + "/api/webchat/history", params={"token": "nope"}) as resp:
        assert await _error(resp) == (401, "invalid_token")
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await http.ws_connect(base_url + "/api/webchat/ws?token=wrong")
    assert exc.value.status == 401


async def test_another_customers_token_sees_only_its_own(
    http: aiohttp.ClientSession, base_url: str, customer: Customer
) -> None:
    await customer.connect()
    await customer.say("private to customer one", "1")
    other = await Customer(http, base_url).start()
    assert other.conversation_id != customer.conversation_id
    history = await other.history()
    assert history["messages"] == []


async def test_socket_garbage_gets_error_frames_and_socket_stays_usable(customer: Customer) -> None:
    ws = await customer.connect()
    cases: list[tuple[Any, str]] = [
        ("not json at all", "malformed_json"),
        ("[1,2,3]", "malformed_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "message"}', "invalid_frame"),
        ('{"type": "message", "client_id": 5, "text": "x"}', "invalid_frame"),
        ('{"type": "message", "client_id": "", "text": "x"}', "invalid_frame"),
        ('{"type": "message", "client_id": "' + "c" * 65 + '", "text": "x"}', "invalid_frame"),
        ('{"type": "message", "client_id": "e1", "text": "   "}', "empty_text"),
        ('{"type": "message", "client_id": "e2", "text": "' + "a" * 10_001 + '"}', "text_too_long"),
        ('{"type": "message", "client_id": "e3", "text": "x", "extra": true}', "invalid_frame"),
    ]
    for raw, code in cases:
        await ws.send_str(raw)
        frame = await next_frame(ws)
        assert frame["type"] == "error" and frame["code"] == code, (raw[:60], frame)
    await ws.send_bytes(b"\x00\x01")
    assert (await next_frame(ws))["code"] == "invalid_frame"
    # still usable, and nothing was stored by the refused frames
    ack = await customer.say("now a good one", "ok-1")
    assert ack["type"] == "ack"
    assert [m["text"] for m in (await customer.history())["messages"]] == ["now a good one"]


async def test_exactly_at_the_limit_is_accepted(customer: Customer) -> None:
    await customer.connect()
    ack = await customer.say("a" * 10_000, "limit")
    assert ack["type"] == "ack"


async def test_flooding_socket_is_rate_limited_but_keeps_acked_messages(
    aiohttp_client: Any, settings: Settings, http: aiohttp.ClientSession
) -> None:
    # A burst of 10, then one a second: 100 at once overrun it however fast storage is.
    app = create_app(settings.model_copy(update={"webchat_rate_per_s": 1, "webchat_burst": 10}))
    base = str((await aiohttp_client(app)).make_url("")).rstrip("/")
    customer = await Customer(http, base).start()
    ws = await customer.connect()
    for i in range(100):
        await ws.send_json({"type": "message", "client_id": f"f{i}", "text": f"flood {i}"})
    acked, limited = set(), set()
    while len(acked) + len(limited) < 100:
        frame = await next_frame(ws)
        (acked if frame["type"] == "ack" else limited).add(frame["client_id"])
        if frame["type"] == "error":
            assert frame["code"] == "rate_limited"
    assert limited, "a burst of 100 messages must hit the per-socket limit"
    history = await customer.history()
    assert {m["client_id"] for m in history["messages"]} == acked


@pytest.mark.parametrize("path", ["/api/conversations/999999", "/api/conversations/abc"])
async def test_unknown_conversation(agent: Agent, path: str) -> None:
    status, body = await agent.get(path)
    assert status in (400, 404) and body["error"]["code"] in (
        "unknown_conversation",
        "invalid_request",
    )
    status, body = await agent.post(path + "/messages", {"text": "hi"})
    assert status in (400, 404)


async def test_agent_reply_validation(agent: Agent, customer: Customer, hub: Any) -> None:
    cid = customer.conversation_id
    for body, code in [
        ({"text": ""}, "empty_text"),
        ({"text": "x" * 10_001}, "text_too_long"),
        ({"text": 5}, "validation_failed"),
        ({}, "validation_failed"),
        ({"text": "ok", "html": "<b>"}, "validation_failed"),
    ]:
        status, resp = await agent.post(f"/api/conversations/{cid}/messages", body)
        assert 400 <= status < 500 and resp["error"]["code"] == code, (body, resp)
    status, resp = await agent.post(f"/api/conversations/{cid}/assign", {"agent_id": 424242})
    assert status == 404 and resp["error"]["code"] == "unknown_agent"
    status, resp = await agent.get("/api/conversations", status="sleeping")
    assert status == 400
    status, resp = await agent.get("/api/conversations", limit="100000")
    assert status == 422
    # nothing half-written: the conversation has no messages and its status is unchanged
    store = hub.server.app[STORE]
    assert await store.read(lambda uow: uow.messages(cid)) == []
    conv = await store.read(lambda uow: uow.conversation(cid))
    assert conv.status.value == "queued" and conv.assignee_id is None


async def test_unknown_api_path_is_json(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/api/nothing-here") as resp:
        assert await _error(resp) == (404, "not_found")
    async with http.delete(base_url + "/api/webchat/sessions") as resp:
        assert await _error(resp) == (405, "method_not_allowed")
