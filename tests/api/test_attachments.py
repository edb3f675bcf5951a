"""Attachments: customers' files reach the agent, agents upload files to reply with, and
downloads cannot run script in the hub's origin."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.api import create_app
from hub.api.keys import ATTACHMENTS, CONVERSATIONS
from hub.config import Settings
from hub.errors import ConfigError
from hub.model import Identity, InboundMessage
from tests.support import Agent, Customer, next_frame

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)
# A part header with a control character: aiohttp's multipart reader raises InvalidHeader.
BAD_PART_HEADER = (
    b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
    b"X-Evil: a\x01b\r\n\r\nhello\r\n--zz--\r\n"
)


async def _upload(agent: Agent, data: bytes, name: str, ctype: str) -> tuple[int, Any]:
    form = aiohttp.FormData(quote_fields=False)  # as browsers send names: raw UTF-8
    form.add_field("file", io.BytesIO(data), filename=name, content_type=ctype)
    async with agent.http.post(
        agent.base + "/api/attachments", data=form, headers={"X-CSRF-Token": agent.csrf}
    ) as resp:
        return resp.status, await resp.json()


async def test_customer_file_reaches_the_agent(hub: TestClient[Any, Any], agent: Agent) -> None:
    app = hub.server.app
    saved = await app[ATTACHMENTS].save(PNG, "../../etc/receipt.png", "image/png; charset=x")
    assert saved.filename == "receipt.png" and saved.content_type == "image/png"
    msg = await app[CONVERSATIONS].receive(
        InboundMessage(
            channel="webchat",
            inbox="website",
            sender=Identity("webchat", "visitor-attach"),
            text="",  # a photo without a caption is still a message
            attachments=(saved,),
        )
    )
    status, detail = await agent.get(f"/api/conversations/{msg.conversation_id}")
    assert status == 200
    [shown] = detail["messages"][-1]["attachments"]
    assert shown["filename"] == "receipt.png" and shown["size"] == len(PNG)

    async with agent.http.get(agent.base + shown["url"]) as resp:
        assert resp.status == 200
        assert await resp.read() == PNG
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Content-Disposition"].startswith("inline;")

    # Whatever type the link claims, HTML is never served as HTML from the hub's origin.
    html = await app[ATTACHMENTS].save(b"<script>alert(1)</script>", "x.html", "text/html")
    async with agent.http.get(
        f"{agent.base}/api/attachments/{html.storage_key}", params={"type": "text/html"}
    ) as resp:
        assert resp.headers["Content-Type"] == "application/octet-stream"
        assert resp.headers["Content-Disposition"].startswith("attachment;")
        assert "sandbox" in resp.headers["Content-Security-Policy"]


async def test_agent_replies_with_an_uploaded_file(
    hub: TestClient[Any, Any], agent: Agent, customer: Customer
) -> None:
    await customer.connect()
    await customer.say("please send me the invoice", "c1")
    conv_id = customer.conversation_id
    status, body = await _upload(agent, b"%PDF-1.4 invoice", "发票 2026.pdf", "application/pdf")
    assert status == 201, body
    uploaded = body["attachment"]
    assert uploaded["filename"] == "发票 2026.pdf" and uploaded["size"] == 16

    status, body = await agent.post(
        f"/api/conversations/{conv_id}/messages", {"text": "", "attachments": [uploaded]}
    )
    assert status == 201, body
    [sent] = body["message"]["attachments"]
    assert sent["storage_key"] == uploaded["storage_key"] and sent["size"] == 16

    async with agent.http.get(agent.base + sent["url"]) as resp:
        assert await resp.read() == b"%PDF-1.4 invoice"
        assert (
            "filename*=UTF-8''%E5%8F%91%E7%A5%A8%202026.pdf" in resp.headers["Content-Disposition"]
        )


async def test_the_customer_gets_the_agents_file_live_and_on_resume(
    agent: Agent, customer: Customer, http: aiohttp.ClientSession, base_url: str
) -> None:
    ws = await customer.connect()
    await customer.say("can I see the form?", "c1")
    status, body = await _upload(agent, PNG, "表格.png", "image/png")
    assert status == 201, body
    status, body = await agent.post(
        f"/api/conversations/{customer.conversation_id}/messages",
        {"text": "Here it is", "attachments": [body["attachment"]]},
    )
    assert status == 201, body
    message_id = body["message"]["id"]

    frame = await next_frame(ws, lambda f: f["type"] == "message")
    assert frame["text"] == "Here it is"
    [live] = frame["attachments"]
    assert live == {
        "filename": "表格.png",
        "content_type": "image/png",
        "size": len(PNG),
        "url": f"/api/webchat/attachments/{message_id}/0",
    }
    [stored] = (await customer.history())["messages"][-1]["attachments"]
    assert stored == live
    # Neither the agent API's storage key nor its url is handed to the customer.
    assert "storage_key" not in live

    async with http.get(base_url + live["url"], params={"token": customer.token}) as resp:
        assert resp.status == 200
        assert await resp.read() == PNG
        assert resp.headers["Content-Type"] == "image/png"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"

    # Another visitor's token, a wrong token, no token, a file that is not there, garbage.
    other = await Customer(http, base_url).start()
    refusals = [
        (live["url"], {"token": other.token}, 404, "unknown_attachment"),
        (live["url"], {"token": "x" * 43}, 401, "invalid_token"),
        (live["url"], {}, 422, "validation_failed"),
        (f"/api/webchat/attachments/{message_id}/1", {"token": customer.token}, 404, None),
        (f"/api/webchat/attachments/{message_id + 999}/0", {"token": customer.token}, 404, None),
        ("/api/webchat/attachments/x/0", {"token": customer.token}, 400, "invalid_request"),
    ]
    for url, params, status, code in refusals:
        async with http.get(base_url + url, params=params) as resp:
            assert resp.status == status, (url, params, await resp.text())
            assert (await resp.json())["error"]["code"] == (code or "unknown_attachment")
    await ws.close()


async def _send_files(
    customer: Customer,
    client_id: str,
    files: list[tuple[str, bytes, str]],
    text: str | None = None,
    token: str | None = None,
) -> tuple[int, Any]:
    form = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    if text is not None:
        form.add_field("text", text)
    for name, data, ctype in files:
        form.add_field("file", io.BytesIO(data), filename=name, content_type=ctype)
    params = {"token": token or customer.token, "client_id": client_id}
    async with customer.http.post(
        customer.base + "/api/webchat/messages", params=params, data=form
    ) as resp:
        return resp.status, await resp.json()


async def test_the_customer_sends_files_the_agent_opens(
    hub: TestClient[Any, Any], agent: Agent, customer: Customer
) -> None:
    events = await agent.events()
    files = [("截图 1.png", PNG, "image/png"), ("log.txt", b"error 42\n", "text/plain")]
    status, ack = await _send_files(customer, "f-1", files, text="  the app shows this  ")
    assert status == 201, ack
    assert ack["client_id"] == "f-1" and isinstance(ack["message_id"], int)

    seen = await next_frame(
        events,
        lambda f: (
            f.get("kind") == "message.created" and f["data"]["message"]["id"] == ack["message_id"]
        ),
    )
    live = seen["data"]["message"]
    assert live["author"] == "customer" and live["text"] == "the app shows this"
    assert [(a["filename"], a["size"]) for a in live["attachments"]] == [
        ("截图 1.png", len(PNG)),
        ("log.txt", 9),
    ]
    async with agent.http.get(agent.base + live["attachments"][1]["url"]) as resp:
        assert await resp.read() == b"error 42\n"

    # A resend after a lost answer (same client_id) is the same message, stored once.
    status, again = await _send_files(customer, "f-1", files, text="the app shows this")
    assert status == 201 and again["message_id"] == ack["message_id"]
    history = (await customer.history())["messages"]
    assert [(m["client_id"], len(m["attachments"])) for m in history] == [("f-1", 2)]
    # The customer can open their own file from the history.
    async with customer.http.get(
        customer.base + history[0]["attachments"][0]["url"], params={"token": customer.token}
    ) as resp:
        assert resp.status == 200 and await resp.read() == PNG
    await events.close()


async def test_bad_customer_file_messages_are_refused_and_store_nothing(
    hub: TestClient[Any, Any], customer: Customer, caplog: pytest.LogCaptureFixture
) -> None:
    limit = hub.server.app[ATTACHMENTS].max_bytes
    one = [("a.txt", b"a", "text/plain")]
    cases: list[tuple[tuple[int, Any], int, str]] = [
        (await _send_files(customer, "b-1", []), 400, "no_file"),
        (await _send_files(customer, "b-2", one * 6), 400, "too_many_attachments"),
        (
            await _send_files(customer, "b-3", [("big.bin", b"x" * (limit + 1), "x/y")]),
            413,
            "attachment_too_large",
        ),
        (await _send_files(customer, "b-4", one, text="长" * 10_001), 413, "text_too_long"),
        (await _send_files(customer, "b-5", one, token="y" * 43), 401, "invalid_token"),
        (await _send_files(customer, "", one), 422, "validation_failed"),
    ]
    for (status, body), want_status, want_code in cases:
        assert (status, body["error"]["code"]) == (want_status, want_code), body
    async with customer.http.post(
        customer.base + "/api/webchat/messages",
        params={"token": customer.token, "client_id": "b-7"},
        json={"text": "hi"},
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "not_multipart"
    # A body that is not valid multipart (no boundary, cut off part-way, a part header with a
    # control character) is the client's mistake: a 400, not a 500.
    cut = b'--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nabc'
    for content_type, body in [
        ("multipart/form-data", b"garbage"),
        ("multipart/form-data; boundary=zz", cut),
        ("multipart/form-data; boundary=zz", BAD_PART_HEADER),
    ]:
        async with customer.http.post(
            customer.base + "/api/webchat/messages",
            params={"token": customer.token, "client_id": "b-8"},
            data=body,
            headers={"Content-Type": content_type},
        ) as resp:
            assert resp.status == 400, await resp.text()
            assert (await resp.json())["error"]["code"] == "malformed_multipart"
    assert (await customer.history())["messages"] == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # Every refusal came before a file was saved: no bytes were left behind either.
    assert [p for p in hub.server.app[ATTACHMENTS].root.rglob("*") if p.is_file()] == []

    # Files come at most FILES_BURST at once per session, then a few a minute (refused
    # requests count too, so a fresh visitor shows the burst).
    fresh = await Customer(customer.http, customer.base).start()
    codes = [(await _send_files(fresh, f"r-{i}", one))[0] for i in range(12)]
    assert codes[:10] == [201] * 10 and codes[10:] == [429, 429]


async def test_bad_uploads_and_downloads_are_refused(
    hub: TestClient[Any, Any],
    agent: Agent,
    agent_http: aiohttp.ClientSession,
    base_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limit = hub.server.app[ATTACHMENTS].max_bytes
    status, body = await _upload(agent, b"x" * (limit + 1), "big.bin", "application/zip")
    assert status == 413 and body["error"]["code"] == "attachment_too_large"

    status, body = await agent.post(
        "/api/conversations/1/messages",
        {
            "text": "",
            "attachments": [{"storage_key": "0" * 64, "filename": "a", "content_type": "b"}],
        },
    )
    assert status == 404 and body["error"]["code"] == "unknown_attachment"

    status, body = await agent.get("/api/attachments/..%2F..%2Fhub.sqlite3")
    assert status == 400 and body["error"]["code"] == "bad_attachment_key"

    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.get(f"{base_url}/api/attachments/{'0' * 64}") as resp:
            assert resp.status == 401

    async with agent.http.post(
        agent.base + "/api/attachments", json={}, headers={"X-CSRF-Token": agent.csrf}
    ) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "not_multipart"
    for garbage in (b"garbage", BAD_PART_HEADER):
        async with agent.http.post(
            agent.base + "/api/attachments",
            data=garbage,
            headers={
                "X-CSRF-Token": agent.csrf,
                "Content-Type": "multipart/form-data; boundary=zz",
            },
        ) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["code"] == "malformed_multipart"
    # Refused, not failed: nothing was logged as a server error.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_an_unknown_channel_in_the_settings_stops_start_up(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, channels={"pigeon": {}}, log_level="warning")
    with pytest.raises(ConfigError, match=r"channels\.pigeon: unknown channel 'pigeon'"):
        create_app(settings)
