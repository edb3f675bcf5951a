"""The router in the running hub: a web-chat customer asking for a human reaches the right
agent; policy and profiles through the admin API; capacity follows every way of assigning."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from bot.phrases import say_in
from hub.api import create_app
from hub.api.keys import AGENTS
from hub.api.routing import ROUTING
from hub.config import Settings
from hub.model import Role
from tests.routing.support import POLICY
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, Agent, Customer, next_frame

HUB_POLICY = POLICY.replace("  support:\n", '  "*":\n')
PASSWORD = "routing-test-pw"
NewAgent = Callable[[str], Awaitable[Agent]]


@contextlib.asynccontextmanager
async def restarted(aiohttp_client: Any, settings: Settings) -> AsyncIterator[Agent]:
    """The same hub started again (a restart), with the demo admin signed in."""
    again = await aiohttp_client(create_app(settings))
    url = str(again.make_url("")).rstrip("/")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield await Agent(session, url).login()


@pytest.fixture
def database_url() -> str | None:
    return None  # SQLite; the routing tables' storage is the same code on PostgreSQL


@pytest.fixture
def inbox_rules() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None, inbox_rules: dict[str, Any]) -> Settings:
    policy = tmp_path / "routing.yaml"
    policy.write_text(HUB_POLICY)
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        demo=True,
        log_level="warning",
        demo_agent_email=AGENT_EMAIL,  # an admin
        demo_agent_password=AGENT_PASSWORD,
        bot_enabled=True,
        bot_inboxes={"website": inbox_rules},
        routing_policy=policy,
    )


@pytest.fixture
async def hub(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    return client


async def put(agent: Agent, path: str, body: Any) -> tuple[int, Any]:
    async with agent.http.put(
        agent.base + path, json=body, headers={"X-CSRF-Token": agent.csrf}
    ) as resp:
        return resp.status, await resp.json()


async def set_profile(admin: Agent, who: Agent, profile: dict[str, Any]) -> None:
    status, body = await put(admin, f"/api/routing/agents/{who.id}", profile)
    assert status == 200, body


async def chat(
    http: aiohttp.ClientSession, base_url: str, text: str, language: str | None = None
) -> tuple[Customer, aiohttp.ClientWebSocketResponse]:
    """A new web chat customer who has said `text`, with its open socket."""
    customer = await Customer(http, base_url).start(language=language)
    ws = await customer.connect()
    await customer.say(text, "c-1")
    return customer, ws


def decision(conv_id: int, name: str) -> Callable[[dict[str, Any]], bool]:
    """Matches the router's `name` decision ("queued", "offered"...) on conversation conv_id."""

    def match(frame: dict[str, Any]) -> bool:
        return (
            frame.get("kind") == "routing.decision"
            and frame.get("conversation_id") == conv_id
            and frame.get("data", {}).get("decision") == name
        )

    return match


async def load_of(admin: Agent, until: Callable[[dict[int, int]], bool]) -> dict[int, int]:
    """Capacity in use per agent, once the router has caught up with the event bus."""
    for _ in range(100):
        status, listing = await admin.get("/api/routing/agents")
        assert status == 200, listing
        load = {a["id"]: a["used_capacity"] for a in listing["agents"]}
        if until(load):
            break
        await asyncio.sleep(0.05)
    return load


@pytest.fixture
async def new_agent(hub: TestClient[Any, Any], base_url: str) -> AsyncIterator[NewAgent]:
    """Makes a signed-in agent (role agent) by email; their sessions close after the test."""
    sessions: list[aiohttp.ClientSession] = []

    async def make(email: str) -> Agent:
        await hub.app[AGENTS].add(email, email.split("@")[0], Role.AGENT, PASSWORD)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(session)
        return await Agent(session, base_url).login(email, PASSWORD)

    yield make
    for session in sessions:
        await session.close()


async def test_web_chat_customer_asking_for_a_human_reaches_the_right_agent(
    new_agent: NewAgent, base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    english = await new_agent("en@example.test")
    chinese = await new_agent("zh@example.test")
    for who, skills, languages in (
        (english, {"tech": 5}, ["en"]),
        (chinese, {"tech": 2}, ["zh-CN", "en"]),
    ):
        await set_profile(agent, who, {"skills": skills, "languages": languages})
        status, body = await put(who, "/api/agent/presence", {"presence": "available"})
        assert status == 200, body
    events = await chinese.events()

    customer, ws = await chat(http, base_url, "转人工", language="zh-CN")
    conv_id = customer.conversation_id
    offer = (await next_frame(events, decision(conv_id, "offered")))["data"]
    assert offer["agent_id"] == chinese.id
    assert offer["why"]["chosen"] == chinese.id
    assert [c["agent_id"] for c in offer["why"]["candidates"]] == [chinese.id]

    status, body = await english.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 409 and body["error"]["code"] == "no_such_offer"
    status, body = await chinese.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 200, body
    assert body["conversation"]["status"] == "assigned"
    assert body["conversation"]["assignee_id"] == chinese.id

    status, mine = await chinese.get("/api/conversations", assignee="me")
    assert [c["id"] for c in mine["conversations"]] == [conv_id]
    status, detail = await chinese.get(f"/api/conversations/{conv_id}")
    assert detail["conversation"]["status"] == "assigned"

    status, listing = await agent.get("/api/routing/agents")
    load = {a["id"]: a["used_capacity"] for a in listing["agents"]}
    assert load == {english.id: 0, chinese.id: 35}

    await chinese.post(f"/api/conversations/{conv_id}/resolve", {})
    load = await load_of(agent, lambda load: load[chinese.id] == 0)
    assert load == {english.id: 0, chinese.id: 0}
    await events.close()
    await ws.close()


async def test_admin_api_validates_and_applies_policy_and_profiles(
    new_agent: NewAgent, base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    junior = await new_agent("junior@example.test")
    status, body = await put(
        agent, "/api/routing/policy", {"source": HUB_POLICY.replace("{timeout_s: 600}", "{}")}
    )
    assert status == 422
    assert body["error"]["detail"].startswith(
        "policy:27: inboxes.*.filters[2].steps[0].timeout_s: Field required"
    )
    status, body = await put(agent, f"/api/routing/agents/{junior.id}", {"skills": {"cooking": 3}})
    assert status == 422 and "unknown skill 'cooking'" in body["error"]["detail"]
    status, body = await put(agent, f"/api/routing/agents/{junior.id}", {"skills": {}})
    assert status == 422
    status, body = await put(agent, "/api/routing/agents/7x", {"skills": {"billing": 2}})
    assert (status, body["error"]["code"]) == (400, "invalid_request")
    await set_profile(agent, junior, {"skills": {"billing": 2}, "presence": "available"})
    status, body = await put(junior, "/api/routing/policy", {"source": HUB_POLICY})
    assert status == 403
    status, body = await put(junior, f"/api/routing/agents/{junior.id}", {"skills": {"billing": 5}})
    assert status == 403
    status, body = await agent.get("/api/routing/erlang", rate="100", aht="180", target="20")
    assert status == 200 and body["agents"] == 8, body
    status, body = await agent.get("/api/routing/erlang", rate="100", aht="180", agents="7")
    assert round(body["service_level"], 4) == 0.7404
    status, body = await agent.get("/api/routing/erlang", rate="-1", aht="180")
    assert status == 422
    status, body = await junior.get("/api/routing/erlang", rate="100", aht="180")
    assert status == 403

    # A policy whose only step for general questions wants team tier2: junior is not in it.
    tier2_only = HUB_POLICY.replace("{timeout_s: 600}", "{timeout_s: 600, team: tier2}")
    status, body = await put(agent, "/api/routing/policy", {"source": tier2_only})
    assert status == 200, body
    events = await junior.events()
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    conv_id = customer.conversation_id
    queued = (await next_frame(events, decision(conv_id, "queued")))["data"]
    assert queued["filter"] == "everything-else"
    status, body = await junior.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 409  # nothing offered: it waits for tier2

    # The policy changes: the waiting conversation is routed again under the new one.
    status, body = await put(agent, "/api/routing/policy", {"source": HUB_POLICY})
    assert status == 200
    offer = (await next_frame(events, decision(conv_id, "offered")))["data"]
    assert offer["agent_id"] == junior.id
    status, body = await agent.get("/api/routing/policy")
    assert body["source"] == HUB_POLICY

    # A supervisor's assign is the same one way of assigning: the router books it.
    status, body = await agent.post(f"/api/conversations/{conv_id}/assign", {"agent_id": junior.id})
    assert status == 200, body
    assert (await load_of(agent, lambda load: load[junior.id] > 0))[junior.id] == 35
    status, body = await junior.post(f"/api/conversations/{conv_id}/decline", {})
    assert status == 409  # it is no longer an offer
    await events.close()
    await ws.close()


async def test_sla_warning_then_breach_events(
    hub: TestClient[Any, Any], base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    with_sla = HUB_POLICY.replace(
        '  "*":\n', '  "*":\n    sla: {normal: {resolution_s: 1.0, warning_fraction: 0.5}}\n'
    )
    status, body = await put(agent, "/api/routing/policy", {"source": with_sla})
    assert status == 200, body
    events = await agent.events()
    customer, ws = await chat(http, base_url, "hello")

    def sla(frame: dict[str, Any]) -> bool:
        return (
            frame.get("kind") == "conversation.sla"
            and frame.get("conversation_id") == customer.conversation_id
        )

    first = (await next_frame(events, sla))["data"]
    second = (await next_frame(events, sla))["data"]
    assert (first["target"], first["state"]) == ("resolution", "warning")
    assert (second["target"], second["state"]) == ("resolution", "breach")
    # A page that connects now (a reload) is told the SLA states so far in its first frame.
    reloaded = await agent.events()
    first_frame = await next_frame(reloaded, lambda f: f.get("type") == "routing")
    mine = [s for s in first_frame["sla"] if s["conversation_id"] == customer.conversation_id]
    assert mine == [
        {"conversation_id": customer.conversation_id, "target": "resolution", "state": "breach"}
    ]
    await reloaded.close()
    await events.close()
    await ws.close()


async def test_offer_not_accepted_in_time_goes_to_the_next_agent(
    new_agent: NewAgent, base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    quick = HUB_POLICY.replace("offer_timeout_s: 20", "offer_timeout_s: 0.5")
    status, body = await put(agent, "/api/routing/policy", {"source": quick})
    assert status == 200, body
    senior = await new_agent("senior@example.test")
    junior = await new_agent("junior@example.test")
    # junior is on shift but busy until senior's offer has timed out
    for who, level, presence in ((senior, 5, "available"), (junior, 1, "busy")):
        await set_profile(agent, who, {"skills": {"tech": level}, "presence": presence})
    events = await agent.events()
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    conv_id = customer.conversation_id

    def routing(frame: dict[str, Any]) -> bool:
        return frame.get("kind") in ("routing.decision", "agent.presence") and (
            frame.get("conversation_id") in (conv_id, None)
        )

    seen = []
    while not (seen and seen[-1].get("presence") == "away"):
        seen.append((await next_frame(events, routing))["data"])
    # the next offer gets the usual 20 s, so a loaded test machine cannot expire it too
    status, body = await put(agent, "/api/routing/policy", {"source": HUB_POLICY})
    assert status == 200, body
    status, body = await put(junior, "/api/agent/presence", {"presence": "available"})
    assert status == 200, body
    while not (seen[-1].get("decision") == "offered" and seen[-1]["agent_id"] == junior.id):
        seen.append((await next_frame(events, routing))["data"])
    # A page of junior's that connects now (a reload) is told of the offer in its first frame.
    reloaded = await junior.events()
    first = await next_frame(reloaded, lambda f: f.get("type") == "routing")
    assert first["presence"] == "available"
    [pending] = first["offers"]
    assert pending["conversation_id"] == conv_id
    assert pending["expires_at"] == seen[-1]["expires_at"] and pending["why"] == seen[-1]["why"]
    await reloaded.close()
    decisions = [
        (d.get("decision") or d.get("presence"), d["agent_id"]) for d in seen if "agent_id" in d
    ]
    assert decisions == [
        ("offered", senior.id),
        ("offer_expired", senior.id),
        ("away", senior.id),
        ("available", junior.id),  # junior's own change is an event too (other tabs follow)
        ("offered", junior.id),
    ]
    status, listing = await agent.get("/api/routing/agents")
    presence = {a["id"]: a["presence"] for a in listing["agents"]}
    assert presence == {senior.id: "away", junior.id: "available"}
    status, body = await junior.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 200, body

    # Transfer: only the assigned agent may; to an agent, it is offered to that agent.
    status, body = await senior.post(
        f"/api/conversations/{conv_id}/transfer", {"agent_id": junior.id}
    )
    assert status == 403
    status, body = await junior.post(f"/api/conversations/{conv_id}/transfer", {"team": "nobody"})
    assert status == 404 and body["error"]["code"] == "unknown_team"
    status, body = await junior.post(
        f"/api/conversations/{conv_id}/transfer", {"agent_id": senior.id}
    )
    assert status == 200, body
    offer = (
        await next_frame(events, lambda f: routing(f) and f["data"].get("decision") == "offered")
    )["data"]
    assert (offer["agent_id"], offer["why"]["trigger"]) == (senior.id, "transfer")
    status, body = await senior.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 200 and body["conversation"]["assignee_id"] == senior.id
    await events.close()
    await ws.close()


@pytest.mark.parametrize("inbox_rules", [{"human_only_topics": ["legal"]}])
async def test_the_bots_hand_off_topic_is_a_required_skill(
    new_agent: NewAgent, base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    with_legal = HUB_POLICY.replace(
        "skills: [billing, tech, text-relay]", "skills: [billing, tech, text-relay, legal]"
    )
    status, body = await put(agent, "/api/routing/policy", {"source": with_legal})
    assert status == 200, body
    generalist = await new_agent("tech@example.test")
    lawyer = await new_agent("legal@example.test")
    for who, skills in ((generalist, {"tech": 5}), (lawyer, {"legal": 3})):
        await set_profile(agent, who, {"skills": skills, "presence": "available"})
    events = await agent.events()
    customer, ws = await chat(http, base_url, "I have a legal question about my contract")
    offer = (await next_frame(events, decision(customer.conversation_id, "offered")))["data"]
    assert offer["agent_id"] == lawyer.id
    assert offer["why"]["candidate_count"] == 1
    await events.close()
    await ws.close()


async def test_openapi_describes_the_routing_endpoints(
    http: aiohttp.ClientSession, base_url: str
) -> None:
    async with http.get(base_url + "/api/openapi.json") as resp:
        spec = await resp.json()
    validate(spec)
    for path, method in [
        ("/api/routing/policy", "put"),
        ("/api/routing/agents/{id}", "put"),
        ("/api/routing/erlang", "get"),
        ("/api/agent/presence", "put"),
        ("/api/conversations/{id}/accept", "post"),
        ("/api/conversations/{id}/transfer", "post"),
    ]:
        assert method in spec["paths"].get(path, {}), (path, method)


async def test_a_restarted_hub_rebuilds_the_routers_state(
    aiohttp_client: Any,
    settings: Settings,
    hub: TestClient[Any, Any],
    new_agent: NewAgent,
    base_url: str,
    http: aiohttp.ClientSession,
    agent: Agent,
) -> None:
    helper = await new_agent("helper@example.test")
    await set_profile(agent, helper, {"skills": {"tech": 3}, "presence": "available"})
    events = await helper.events()
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    conv_id = customer.conversation_id
    await next_frame(events, decision(conv_id, "offered"))
    status, body = await helper.post(f"/api/conversations/{conv_id}/accept", {})
    assert status == 200, body
    await events.close()
    await ws.close()
    await hub.close()

    async with restarted(aiohttp_client, settings) as admin:
        status, listing = await admin.get("/api/routing/agents")
        assert status == 200, listing
        [row] = listing["agents"]
        assert (row["id"], row["presence"], row["used_capacity"]) == (helper.id, "available", 35)
        assert row["skills"] == {"tech": 3}


def quick_overflow(action: str) -> str:
    """The hub's policy with general questions overflowing to `action` after half a second."""
    return HUB_POLICY.replace(
        "{timeout_s: 600}\n        overflow: leave_message",
        f"{{timeout_s: 0.5}}\n        overflow: {action}",
    )


def bot_message(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "message" and frame.get("author") == "bot"


async def overflow_notices(agent: Agent, conv_id: int) -> list[str]:
    status, detail = await agent.get(f"/api/conversations/{conv_id}")
    assert status == 200, detail
    return [m["text"] for m in detail["messages"] if "busy" in m["text"] or "都在忙" in m["text"]]


@pytest.mark.parametrize("action", ["leave_message", "voicemail"])
async def test_overflow_tells_the_web_chat_customer_to_leave_a_message(
    action: str, base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    status, body = await put(agent, "/api/routing/policy", {"source": quick_overflow(action)})
    assert status == 200, body
    events = await agent.events()
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    conv_id = customer.conversation_id
    overflow = (await next_frame(events, decision(conv_id, "overflow")))["data"]
    assert (overflow["action"], overflow["reason"]) == (action, "timeout")
    notice = await next_frame(ws, lambda f: bot_message(f) and "busy" in f["text"])
    assert notice["text"] == say_in("en", "overflow_message")

    # It stays in the queue for people, marked as an overflow, and the customer can write.
    status, detail = await agent.get(f"/api/conversations/{conv_id}")
    assert detail["conversation"]["status"] == "queued"
    assert detail["handoff"]["mode"] == "overflow_message"
    assert detail["handoff"]["reason"] == "customer_request"  # the bot's hand-off stays
    await customer.say("Please send me a new invoice", "c-2")
    status, queued = await agent.get("/api/conversations", status="queued")
    assert conv_id in [c["id"] for c in queued["conversations"]]
    assert await overflow_notices(agent, conv_id) == [notice["text"]]
    await events.close()
    await ws.close()


async def test_overflow_notice_is_in_the_conversations_language(
    base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    status, body = await put(
        agent, "/api/routing/policy", {"source": quick_overflow("leave_message")}
    )
    assert status == 200, body
    _customer, ws = await chat(http, base_url, "转人工", language="zh-CN")
    notice = await next_frame(ws, lambda f: bot_message(f) and "都在忙" in f["text"])
    assert notice["text"] == say_in("zh-CN", "overflow_message")
    assert notice["text"] != say_in("en", "overflow_message")
    await ws.close()


@pytest.mark.parametrize("inbox_rules", [{"required_details": ["phone"]}])
async def test_overflow_to_callback_confirms_the_number_and_records_the_request(
    base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    status, body = await put(agent, "/api/routing/policy", {"source": quick_overflow("callback")})
    assert status == 200, body
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    await next_frame(ws, bot_message)  # the bot asks for the phone number first
    await customer.say("+44 20 7946 0000", "c-2")
    notice = await next_frame(ws, lambda f: bot_message(f) and "busy" in f["text"])
    assert notice["text"] == say_in("en", "overflow_callback", phone="+44 20 7946 0000")
    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    handoff = detail["handoff"]
    assert (handoff["mode"], handoff["details"]["phone"]) == (
        "overflow_callback",
        "+44 20 7946 0000",
    )
    assert detail["conversation"]["status"] == "queued"
    await ws.close()


async def test_overflow_to_callback_asks_for_a_number_when_none_is_known(
    base_url: str, http: aiohttp.ClientSession, agent: Agent
) -> None:
    status, body = await put(agent, "/api/routing/policy", {"source": quick_overflow("callback")})
    assert status == 200, body
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    notice = await next_frame(ws, lambda f: bot_message(f) and "busy" in f["text"])
    assert notice["text"] == say_in("en", "overflow_ask_phone")
    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    assert detail["handoff"]["mode"] == "overflow_callback"
    await ws.close()


async def test_a_restarted_hub_does_not_resend_the_overflow_notice(
    aiohttp_client: Any,
    settings: Settings,
    hub: TestClient[Any, Any],
    base_url: str,
    http: aiohttp.ClientSession,
    agent: Agent,
) -> None:
    status, body = await put(
        agent, "/api/routing/policy", {"source": quick_overflow("leave_message")}
    )
    assert status == 200, body
    customer, ws = await chat(http, base_url, "I want to talk to a human please")
    conv_id = customer.conversation_id
    await next_frame(ws, lambda f: bot_message(f) and "busy" in f["text"])
    assert len(await overflow_notices(agent, conv_id)) == 1
    await ws.close()
    await hub.close()

    async with restarted(aiohttp_client, settings) as admin:
        events = await admin.events()
        # Longer than the step timeout: a re-routed conversation would have overflowed again.
        await asyncio.sleep(1.5)
        status, listing = await admin.get("/api/conversations", status="queued")
        assert conv_id in [c["id"] for c in listing["conversations"]]
        assert len(await overflow_notices(admin, conv_id)) == 1
        status, detail = await admin.get(f"/api/conversations/{conv_id}")
        assert detail["handoff"]["mode"] == "overflow_message"
        await events.close()


async def test_the_router_stops_even_when_its_timers_were_just_woken(
    hub: TestClient[Any, Any],
) -> None:
    # run_due() wakes the timer task as it returns; a close() in the same loop turn used to
    # lose its cancellation to that wake-up (Python 3.11's wait_for) and hang shutdown.
    routing = hub.app[ROUTING]
    await routing.run_due()
    closing = asyncio.ensure_future(routing.close())
    done, _ = await asyncio.wait([closing], timeout=10)
    assert closing in done, "the router's close() did not return"
