"""The Rasa action-server contract over real HTTP, with Rasa-format payloads, and the
endpoint's guards: off without a token, the token checked, a rate limit, bad bodies a 4xx."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import logging
import zlib
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot import DOMAIN
from hub.api.keys import ARTICLES, CONVERSATIONS
from hub.model import Identity, InboundMessage

TOKEN = "rasa-action-server-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RATE = 30  # calls a minute per client in these tests


@pytest.fixture
def bot_settings() -> dict[str, Any]:
    return {"action_server_token": TOKEN, "action_server_rate_per_minute": RATE}


ACTIONS = {
    "action_answer_from_kb",
    "action_choose_article",
    "action_article_feedback",
    "action_hand_off",
    "action_collect_details",
    "action_ask_csat",
    "action_record_csat",
}


def call(action: str, text: str, slots: dict[str, Any] | None = None, **extra: Any) -> dict:
    """An action call as Rasa 3 sends it."""
    return {
        "next_action": action,
        "sender_id": "rasa-user-1",
        "tracker": {
            "sender_id": "rasa-user-1",
            "slots": slots or {},
            "latest_message": {"text": text, "intent": {"name": "ask", "confidence": 0.9}},
            "events": [{"event": "user", "text": text, "timestamp": 1700000000.0}],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
        "domain": DOMAIN,
        "version": "3.10.0",
        **extra,
    }


async def post(http: aiohttp.ClientSession, base_url: str, body: Any, **kw: Any) -> tuple[int, Any]:
    data: bytes | io.BytesIO = body if isinstance(body, bytes) else json.dumps(body).encode()
    if len(data) > 64 * 1024:
        data = io.BytesIO(data)  # aiohttp warns about large raw bodies
    kw["headers"] = {**AUTH, **kw.get("headers", {})}
    async with http.post(base_url + "/webhook", data=data, **kw) as resp:
        return resp.status, await resp.json()


def project_error(body: Any) -> str:
    """The code of an error in the hub's one shape (`{"error": {"code", "detail"}}`)."""
    assert set(body) == {"error"} and set(body["error"]) == {"code", "detail"}, body
    assert body["error"]["detail"]
    return str(body["error"]["code"])


async def test_health_and_actions(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/health") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with http.get(base_url + "/actions", headers=AUTH) as resp:
        assert resp.status == 200
        assert {a["name"] for a in await resp.json()} == ACTIONS


async def test_answer_action_runs_with_rasa_payloads(
    hub: Any, http: aiohttp.ClientSession, base_url: str
) -> None:
    status, body = await post(http, base_url, call("action_answer_from_kb", "Where is my parcel?"))
    assert status == 200, body
    assert set(body) == {"events", "responses"}
    [response] = body["responses"]
    assert "How do I track my order?" in response["text"]
    assert [b["title"] for b in response["buttons"]] == ["Yes", "No"]
    slots = {e["name"]: e["value"] for e in body["events"] if e["event"] == "slot"}
    assert slots["pending"] == "feedback"
    assert slots["last_article"]["article_id"] == "en-track-order"
    assert slots["bot_decision"]["decision"] == "answer"


async def test_hand_off_action_pauses_the_conversation(
    hub: Any, http: aiohttp.ClientSession, base_url: str
) -> None:
    status, body = await post(http, base_url, call("action_hand_off", "转人工"))
    assert status == 200, body
    assert "正在为您转接人工客服" in body["responses"][0]["text"]
    assert {"event": "pause", "timestamp": None} in body["events"]


async def test_deflated_body_is_accepted(
    hub: Any, http: aiohttp.ClientSession, base_url: str
) -> None:
    raw = zlib.compress(json.dumps(call("action_ask_csat", "")).encode())
    status, body = await post(http, base_url, raw, headers={"Content-Encoding": "deflate"})
    assert status == 200, body
    assert body["responses"][0]["text"].startswith("How would you rate")


async def test_unknown_action_is_404(http: aiohttp.ClientSession, base_url: str) -> None:
    status, body = await post(http, base_url, call("action_does_not_exist", "hi"))
    assert status == 404
    assert body == {
        "error": "No registered action found for name 'action_does_not_exist'.",
        "action_name": "action_does_not_exist",
    }


async def test_rejected_action_is_400(http: aiohttp.ClientSession, base_url: str) -> None:
    offered = [{"title": "Gift cards", "payload": "Gift cards", "article_id": "gift-cards"}]
    payload = call("action_choose_article", "something else", {"offered": offered})
    status, body = await post(http, base_url, payload)
    assert status == 400
    assert body == {
        "error": "the message picks none of the choices",
        "action_name": "action_choose_article",
    }


async def test_missing_domain_is_449(http: aiohttp.ClientSession, base_url: str) -> None:
    payload = call("action_ask_csat", "")
    del payload["domain"]
    payload["domain_digest"] = "a-digest-the-hub-has-never-seen"
    status, body = await post(http, base_url, payload)
    assert status == 449
    assert body["action_name"] == "action_ask_csat"
    assert body["error"].startswith("Missing domain context")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"{not json", "Invalid body request"),
        (b"", "Invalid body request"),
        (b"[1, 2]", "Invalid body request"),
        (json.dumps({"sender_id": "x"}).encode(), "next_action"),
        (json.dumps({"next_action": 7, "tracker": {}}).encode(), "next_action"),
        (json.dumps({"next_action": "action_ask_csat"}).encode(), "tracker"),
        (
            json.dumps({"next_action": "action_ask_csat", "tracker": {"slots": {}}}).encode(),
            "tracker.sender_id",
        ),
        (
            json.dumps(
                {"next_action": "action_ask_csat", "tracker": {"sender_id": "x", "events": {}}}
            ).encode(),
            "tracker.events",
        ),
        (
            json.dumps(
                {"next_action": "action_ask_csat", "tracker": {"sender_id": "x"}, "domain": []}
            ).encode(),
            "domain",
        ),
    ],
)
async def test_malformed_bodies_are_400(
    http: aiohttp.ClientSession, base_url: str, body: bytes, detail: str
) -> None:
    status, answer = await post(http, base_url, body)
    assert status == 400, answer
    assert answer["error"].startswith("Invalid body request")
    assert detail in answer["error"]


@pytest.mark.parametrize("bot_settings", [{}])
async def test_the_endpoint_is_off_without_a_token(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    for path in ("/webhook", "/actions"):
        async with http.request(
            "POST" if path == "/webhook" else "GET",
            base_url + path,
            json=call("action_ask_csat", ""),
            headers=AUTH,
        ) as resp:
            assert resp.status == 404
            assert project_error(await resp.json()) == "action_server_off"


async def test_a_missing_or_wrong_token_is_401(http: aiohttp.ClientSession, base_url: str) -> None:
    body = call("action_ask_csat", "")
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        async with http.post(base_url + "/webhook", json=body, headers=headers) as resp:
            assert resp.status == 401, headers
            assert project_error(await resp.json()) in ("not_authenticated", "invalid_token")
    # Rasa's own `token:` option in endpoints.yml sends it as the `token` query parameter.
    async with http.post(base_url + "/webhook", json=body, params={"token": TOKEN}) as resp:
        assert resp.status == 200, await resp.text()


async def test_calls_are_rate_limited_per_client(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    statuses = []
    for _ in range(RATE + 2):
        status, body = await post(http, base_url, call("action_ask_csat", ""))
        statuses.append(status)
    assert statuses[:RATE] == [200] * RATE
    assert statuses[RATE:] == [429, 429]
    assert project_error(body) == "rate_limited"


async def test_feedback_counts_once_per_conversation_and_article(
    hub: TestClient[Any, Any], http: aiohttp.ClientSession, base_url: str
) -> None:
    articles = hub.app[ARTICLES]
    before = await articles.get("en-track-order")
    last = {"article_id": "en-track-order", "title": "How do I track my order?"}
    vote = call("action_article_feedback", "no", {"last_article": last})
    for status, body in await asyncio.gather(*(post(http, base_url, vote) for _ in range(5))):
        assert status == 200, body  # five at once
    assert (await post(http, base_url, vote))[0] == 200  # and once more later
    other_sender = call("action_article_feedback", "no", {"last_article": last})
    other_sender["tracker"]["sender_id"] = other_sender["sender_id"] = "rasa-user-2"
    assert (await post(http, base_url, other_sender))[0] == 200
    after = await articles.get("en-track-order")
    assert after.not_helpful == before.not_helpful + 2  # one vote from each conversation


async def test_a_hub_conversation_that_voted_already_is_not_counted_again(
    hub: TestClient[Any, Any], http: aiohttp.ClientSession, base_url: str
) -> None:
    stored = await hub.app[CONVERSATIONS].receive(
        InboundMessage(
            channel="webchat",
            inbox="website",
            sender=Identity("webchat", "visitor-votes"),
            text="where is my parcel?",
            channel_message_id="votes-1",
        )
    )
    conversation_id = stored.conversation_id
    articles = hub.app[ARTICLES]
    # The hub's own bot counted this conversation's vote (in an earlier run of the hub).
    await articles.feedback("en-track-order", False, conversation_id)
    last = {"article_id": "en-track-order", "title": "How do I track my order?"}
    slots = {"last_article": last, "conversation_id": conversation_id}
    assert (await post(http, base_url, call("action_article_feedback", "no", slots)))[0] == 200
    assert (await articles.get("en-track-order")).not_helpful == 1


async def test_an_unknown_conversation_id_is_422_not_500(
    http: aiohttp.ClientSession, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    last = {"article_id": "en-track-order", "title": "How do I track my order?"}
    for conversation_id in (987654, 2**63, "7", True):
        slots = {"last_article": last, "conversation_id": conversation_id}
        status, body = await post(http, base_url, call("action_article_feedback", "no", slots))
        assert status == 422, (conversation_id, body)
        assert "conversation_id" in body["error"]
        assert body["action_name"] == "action_article_feedback"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_body_labelled_deflate_that_is_not_is_400(
    http: aiohttp.ClientSession, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    raw = json.dumps(call("action_ask_csat", "")).encode()
    cut = zlib.compress(raw)[:-8]
    for body in (raw, b"\x78\x9c garbage", cut):
        status, answer = await post(http, base_url, body, headers={"Content-Encoding": "deflate"})
        assert status == 400, (body[:20], answer)
        assert project_error(answer) == "bad_encoding"
    status, answer = await post(http, base_url, raw, headers={"Content-Encoding": "br"})
    assert status == 400 and project_error(answer) == "bad_encoding"
    # gzip, and the raw deflate some clients send, are read.
    for packed, encoding in ((gzip.compress(raw), "gzip"), (zlib.compress(raw)[2:-4], "deflate")):
        status, answer = await post(http, base_url, packed, headers={"Content-Encoding": encoding})
        assert status == 200, (encoding, answer)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_oversized_body_is_413_in_the_hub_error_shape(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    tracker = call("action_ask_csat", "")
    tracker["tracker"]["events"] = [{"event": "user", "text": "x" * 1000}] * 3000  # ~3 MB
    status, body = await post(http, base_url, tracker)
    assert status == 413
    assert project_error(body) == "body_too_large"
    huge = zlib.compress(b" " * (20 * 1024**2))  # 20 KB that inflate to 20 MB
    status, body = await post(http, base_url, huge, headers={"Content-Encoding": "deflate"})
    assert status == 413
    assert project_error(body) == "body_too_large"


@pytest.mark.parametrize("depth", [100, 5000, 50_000])
async def test_deeply_nested_json_is_400(
    http: aiohttp.ClientSession, base_url: str, depth: int, caplog: pytest.LogCaptureFixture
) -> None:
    payload = call("action_ask_csat", "")
    nested = json.dumps(payload)[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    status, body = await post(http, base_url, nested.encode())
    assert status == 400, body
    assert "nested" in body["error"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
