"""The Rasa action-server contract over real HTTP, with Rasa-format payloads."""

from __future__ import annotations

import json
import zlib
from typing import Any

import aiohttp
import pytest

from bot import DOMAIN

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
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with http.post(base_url + "/webhook", data=data, **kw) as resp:
        return resp.status, await resp.json()


async def test_health_and_actions(http: aiohttp.ClientSession, base_url: str) -> None:
    async with http.get(base_url + "/health") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with http.get(base_url + "/actions") as resp:
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
