"""The API description, cross-origin embedding of the widget, and the health probes."""

from __future__ import annotations

from typing import Any

import aiohttp
from openapi_spec_validator import validate

from tests.support import Customer


async def test_openapi_document_is_valid_and_complete(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    async with http.get(base_url + "/api/openapi.json") as resp:
        assert resp.status == 200
        spec = await resp.json()
    validate(spec)
    paths = spec["paths"]
    for path, method in [
        ("/api/webchat/sessions", "post"),
        ("/api/webchat/history", "get"),
        ("/api/conversations", "get"),
        ("/api/conversations/{id}", "get"),
        ("/api/conversations/{id}/messages", "post"),
        ("/api/conversations/{id}/assign", "post"),
        ("/api/conversations/{id}/resolve", "post"),
        ("/api/conversations/{id}/reopen", "post"),
        ("/api/auth/login", "post"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths.get(path, {}), (path, method)
    reply = paths["/api/conversations/{id}/messages"]["post"]
    assert "201" in reply["responses"] and "413" in reply["responses"]
    assert "MessageOut" in spec["components"]["schemas"]

    def path_param(path: str, method: str, name: str) -> dict[str, Any]:
        params = paths[path][method]["parameters"]
        return next(p["schema"] for p in params if p["in"] == "path" and p["name"] == name)

    assert path_param("/api/conversations/{id}", "get", "id") == {"type": "integer"}
    assert path_param("/api/kb/articles/{id}", "get", "id") == {"type": "string"}
    assert path_param("/api/kb/articles/{id}/versions/{n}", "get", "n") == {"type": "integer"}
    assert path_param("/api/help/articles/{id}", "get", "id") == {"type": "string"}

    resend = paths["/api/conversations/{id}/messages/{message_id}/resend"]["post"]
    assert {"202", "404", "409"} <= set(resend["responses"])
    assert path_param(
        "/api/conversations/{id}/messages/{message_id}/resend", "post", "message_id"
    ) == {"type": "integer"}
    assert "delivery_error" in spec["components"]["schemas"]["MessageOut"]["required"]


async def test_widget_endpoints_allow_cross_origin_calls(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    origin = {"Origin": "https://shop.example"}
    async with http.options(
        base_url + "/api/webchat/sessions",
        headers={
            **origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    ) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    async with http.post(base_url + "/api/webchat/sessions", json={}, headers=origin) as resp:
        assert resp.status == 201
        assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")
    # the agent API is not opened up to other sites
    async with http.get(base_url + "/api/conversations", headers=origin) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers


async def test_health_probes(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    async with http.get(base_url + "/readyz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ready"})


async def test_pages_are_served(
    http: aiohttp.ClientSession, base_url: str, customer: Customer
) -> None:
    for path, needle in [
        ("/", "/inbox"),
        ("/demo", "/static/widget.js"),
        ("/inbox", "inbox"),
        ("/static/widget.js", "omnihub"),
    ]:
        async with http.get(base_url + path) as resp:
            assert resp.status == 200, path
            assert needle in await resp.text(), path
