"""Agent sign-in, session cookie, CSRF protection and the events socket's access check."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support import AGENT_EMAIL, Agent, Customer


async def test_login_wrong_password_and_unknown_email(
    agent_http: aiohttp.ClientSession, base_url: str
) -> None:
    for email, password in [(AGENT_EMAIL, "wrong-password"), ("nobody@x.test", "whatever1")]:
        async with agent_http.post(
            base_url + "/api/auth/login", json={"email": email, "password": password}
        ) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_credentials"
            assert "omnihub_session" not in resp.cookies


async def test_endpoints_need_a_session(http: aiohttp.ClientSession, base_url: str) -> None:
    for method, path in [
        ("GET", "/api/conversations"),
        ("GET", "/api/conversations/1"),
        ("POST", "/api/conversations/1/messages"),
        ("GET", "/api/auth/me"),
        ("GET", "/api/invites/channels"),
    ]:
        async with http.request(method, base_url + path, json={"text": "x"}) as resp:
            assert resp.status == 401, path
            assert (await resp.json())["error"]["code"] == "not_authenticated"
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await http.ws_connect(base_url + "/api/agent/ws")
    assert exc.value.status == 401


async def test_csrf_token_is_required_on_unsafe_requests(agent: Agent, customer: Customer) -> None:
    url = f"{agent.base}/api/conversations/{customer.conversation_id}/messages"
    async with agent.http.post(url, json={"text": "no header"}) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    async with agent.http.post(
        url, json={"text": "bad header"}, headers={"X-CSRF-Token": "forged"}
    ) as resp:
        assert resp.status == 403
    status, _ = await agent.post(
        f"/api/conversations/{customer.conversation_id}/messages", {"text": "with the header"}
    )
    assert status == 201


async def test_me_and_logout(agent: Agent) -> None:
    status, me = await agent.get("/api/auth/me")
    assert status == 200
    assert me["agent"]["email"] == AGENT_EMAIL and me["csrf_token"] == agent.csrf
    # Without the Telegram channel nobody can be invited anywhere: the inbox shows no button.
    assert await agent.get("/api/invites/channels") == (200, {"channels": []})
    status, _ = await agent.post("/api/auth/logout")
    assert status == 204
    status, body = await agent.get("/api/auth/me")
    assert status == 401 and body["error"]["code"] == "not_authenticated"


async def test_session_cookie_is_httponly(agent_http: aiohttp.ClientSession, base_url: str) -> None:
    async with agent_http.post(
        base_url + "/api/auth/login", json={"email": AGENT_EMAIL, "password": "omnihub-demo"}
    ) as resp:
        cookie = resp.cookies["omnihub_session"]
        assert cookie["httponly"] and cookie["samesite"] == "Lax"
