"""The agent inbox with skill-based routing on, in headless Chromium against `omnihub serve`:
presence from the header, offers with a countdown (accept, decline, or let them time out),
SLA badges, transfer to a colleague, offline on sign-out; and no routing controls at all when
routing is off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import LiveHub, start_live_hub
from tests.support import AGENT_EMAIL, AGENT_PASSWORD
from tests.web import test_browser as shared

expect = shared.expect
Page = shared.Page

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

PASSWORD = "routing-inbox-pw"
LIN = "lin@example.test"  # speaks Chinese and English
EVE = "eve@example.test"  # English only

POLICY = """\
skills: [billing, tech]
teams: [tier1, tier2]
offer_timeout_s: {offer_timeout}
wrap_up_s: 0
inboxes:
  "*":
    filters:
      - name: everything
        steps: [{{timeout_s: 600}}]
{sla}"""

QUICK_SLA = """\
    sla:
      normal: {first_response_s: 4, warning_fraction: 0.5}
"""


@dataclass
class RoutingHub:
    url: str
    admin_csrf: str
    admin: Any  # the admin's Playwright APIRequestContext


def add_agent(data_dir: Path, email: str, name: str) -> None:
    """`omnihub agents add`, as an admin would run it on the hub's host."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "agents",
            "add",
            "--email",
            email,
            "--name",
            name,
            "--password",
            PASSWORD,
        ],
        env={**os.environ, "OMNIHUB_DATA_DIR": str(data_dir), "OMNIHUB_LOG_LEVEL": "warning"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def sign_in(page: Page, url: str, email: str, password: str = PASSWORD) -> int:
    """Signs the page's browser context in through the API; returns the agent's id."""
    resp = page.request.post(url + "/api/auth/login", data={"email": email, "password": password})
    assert resp.ok, resp.text()
    page.goto(url + "/inbox")
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()
    agent_id: int = resp.json()["agent"]["id"]
    return agent_id


def set_profile(hub: RoutingHub, agent_id: int, profile: dict[str, Any]) -> None:
    resp = hub.admin.put(
        f"{hub.url}/api/routing/agents/{agent_id}",
        data=profile,
        headers={"X-CSRF-Token": hub.admin_csrf},
    )
    assert resp.ok, resp.text()


def presence_of(hub: RoutingHub, agent_id: int) -> str:
    resp = hub.admin.get(hub.url + "/api/routing/agents")
    assert resp.ok, resp.text()
    return str(next(a["presence"] for a in resp.json()["agents"] if a["id"] == agent_id))


def wait_for_load(hub: RoutingHub, wanted: dict[int, int]) -> dict[int, int]:
    """Capacity in use per agent, once the router has caught up with the events."""
    deadline = time.monotonic() + 15
    while True:
        resp = hub.admin.get(hub.url + "/api/routing/agents")
        assert resp.ok, resp.text()
        load = {a["id"]: a["used_capacity"] for a in resp.json()["agents"]}
        if load == wanted or time.monotonic() > deadline:
            return load
        time.sleep(0.1)


def customer_asks(page: Page, url: str, text: str) -> str:
    page.goto(url + "/demo")
    shared.open_widget(page)
    page.get_by_test_id("omnihub-input").fill(text)
    page.get_by_test_id("omnihub-input").press("Enter")
    sent = shared.widget_messages(page, "customer").filter(has_text=text)
    expect(sent).to_have_attribute("data-state", "sent")
    conv_id = page.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
    assert conv_id
    return conv_id


def offer_card(page: Page, conv_id: str):
    return page.locator(f'[data-testid="offer"][data-conversation-id="{conv_id}"]')


@pytest.fixture
def start_routing_hub(
    tmp_path: Path, browser: shared.Browser
) -> Iterator[Callable[..., RoutingHub]]:
    procs = []
    contexts = []

    def start(offer_timeout: int = 60, sla: str = "") -> RoutingHub:
        policy = tmp_path / "routing.yaml"
        policy.write_text(POLICY.format(offer_timeout=offer_timeout, sla=sla))
        data_dir = tmp_path / "live"  # start_live_hub's data directory
        add_agent(data_dir, LIN, "Lin")
        add_agent(data_dir, EVE, "Eve")
        proc = start_live_hub(tmp_path, OMNIHUB_ROUTING_POLICY=str(policy))
        procs.append(proc)
        context = browser.new_context()
        contexts.append(context)
        resp = context.request.post(
            proc.url + "/api/auth/login", data={"email": AGENT_EMAIL, "password": AGENT_PASSWORD}
        )
        assert resp.ok, resp.text()  # the demo agent is an admin
        return RoutingHub(proc.url, resp.json()["csrf_token"], context.request)

    yield start
    for context in contexts:
        context.close()
    for proc in procs:
        proc.stop()


def test_customer_is_offered_to_the_right_agent_who_accepts_replies_and_transfers(
    start_routing_hub: Callable[..., RoutingHub], open_page: Callable[..., Page]
) -> None:
    hub = start_routing_hub()
    lin, eve = open_page(), open_page()
    lin_id = sign_in(lin, hub.url, LIN)
    eve_id = sign_in(eve, hub.url, EVE)
    set_profile(hub, lin_id, {"skills": {"tech": 2}, "languages": ["zh-CN", "en"]})
    set_profile(hub, eve_id, {"skills": {"tech": 5}, "languages": ["en"]})
    for page in (lin, eve):  # the profiles came after the pages: the presence shows on reload
        page.reload()

    # Presence from the header: both start offline, the hub learns each change.
    lin_presence = lin.get_by_test_id("presence-select")
    expect(lin_presence).to_be_visible()
    expect(lin_presence).to_have_value("offline")
    expect(lin.get_by_label("Presence")).to_have_value("offline")
    lin_presence.select_option("available")
    eve.get_by_test_id("presence-select").select_option("available")
    for who, agent_id in ((lin, lin_id), (eve, eve_id)):
        expect(who.get_by_test_id("presence-select")).to_have_value("available")
        expect(who.get_by_test_id("presence-select")).to_be_enabled()
        assert presence_of(hub, agent_id) == "available"

    # A Chinese-speaking customer, bot off: queued, and only Lin speaks Chinese.
    customer = open_page(locale="zh-CN")
    question = "你好，我的网络连不上，请帮我转人工"
    conv_id = customer_asks(customer, hub.url, question)

    offer = offer_card(lin, conv_id)
    expect(offer).to_be_visible()
    expect(offer).to_have_attribute("aria-labelledby", f"offer-title-{conv_id}")
    expect(offer.get_by_role("heading")).to_contain_text("Web chat")
    expect(offer.get_by_test_id("offer-why")).to_have_text(
        re.compile(r"Best match of 1 available agents \(score \d+\.\d\d\)")
    )
    expect(offer.get_by_test_id("offer-countdown")).to_have_text(re.compile(r"Expires in \d+ s"))
    expect(offer.get_by_test_id("offer-countdown")).to_have_attribute("role", "timer")
    expect(eve.get_by_test_id("offers")).to_be_hidden()
    lin.screenshot(path="/tmp/omnihub-routing-offer.png")

    # A reload does not lose the offer: the agent socket's first frame brings it back.
    left = int(re.findall(r"\d+", offer.get_by_test_id("offer-countdown").inner_text())[0])
    lin.reload()
    expect(offer).to_be_visible()
    again = int(re.findall(r"\d+", offer.get_by_test_id("offer-countdown").inner_text())[0])
    assert 0 < again <= left  # the same offer, still counting down (not a fresh one)

    offer.get_by_role("button", name=re.compile("^Accept conversation with")).click()
    expect(lin.get_by_test_id("offers")).to_be_hidden()
    expect(lin.get_by_test_id("conv-status")).to_have_text("Assigned")
    expect(shared.inbox_messages(lin, "customer").filter(has_text=question)).to_be_visible()
    expect(lin.get_by_test_id("reply-input")).to_be_focused()
    reply = "您好，我是小林，马上为您查看。"
    lin.get_by_test_id("reply-input").fill(reply)
    lin.get_by_test_id("reply-input").press("Enter")
    expect(shared.widget_messages(customer, "agent").filter(has_text=reply)).to_be_visible()

    # Lin hands the conversation to Eve, who is offered it.
    lin.get_by_test_id("transfer-btn").click()
    expect(lin.get_by_test_id("transfer-btn")).to_have_attribute("aria-expanded", "true")
    expect(lin.get_by_test_id("transfer-target")).to_be_focused()
    lin.get_by_test_id("transfer-kind").select_option("agent")
    lin.get_by_test_id("transfer-target").fill("not a number")
    lin.get_by_test_id("transfer-submit").click()
    expect(lin.locator("#detail-error")).to_have_text("Enter the agent's number (ID).")
    lin.get_by_test_id("transfer-target").fill(str(eve_id))
    lin.get_by_test_id("transfer-submit").click()
    expect(lin.get_by_test_id("transfer-form")).to_be_hidden()

    transferred = offer_card(eve, conv_id)
    expect(transferred.get_by_test_id("offer-why")).to_have_text(
        "Transferred to you by a colleague"
    )
    # Eve declines: her card goes, and the router offers it to the next best agent, Lin again.
    transferred.get_by_test_id("offer-decline").click()
    expect(eve.get_by_test_id("offers")).to_be_hidden()
    back = offer_card(lin, conv_id)
    expect(back.get_by_test_id("offer-why")).to_contain_text("Best match of 1 available agents")
    back.get_by_test_id("offer-accept").click()
    expect(lin.get_by_test_id("offers")).to_be_hidden()
    expect(lin.get_by_test_id("routing-error")).to_be_hidden()
    expect(lin.get_by_test_id("transfer-btn")).to_be_visible()

    # Second try: Eve takes it.
    lin.get_by_test_id("transfer-btn").click()
    lin.get_by_test_id("transfer-target").fill(str(eve_id))
    lin.get_by_test_id("transfer-submit").click()
    expect(lin.get_by_test_id("transfer-form")).to_be_hidden()
    offer_card(eve, conv_id).get_by_test_id("offer-accept").click()
    expect(eve.get_by_test_id("conv-status")).to_have_text("Assigned")
    expect(shared.inbox_messages(eve, "agent").filter(has_text=reply)).to_be_visible()
    expect(eve.get_by_test_id("transfer-btn")).to_be_visible()
    # Lin's view follows: the conversation is Eve's now, so Lin can no longer transfer it.
    expect(lin.get_by_test_id("transfer-btn")).to_be_hidden()
    # And the router books it against Eve's capacity only (a web chat costs 35).
    assert wait_for_load(hub, {lin_id: 0, eve_id: 35}) == {lin_id: 0, eve_id: 35}


def test_unanswered_offer_times_out_sets_away_and_sla_breach_shows(
    start_routing_hub: Callable[..., RoutingHub], open_page: Callable[..., Page]
) -> None:
    hub = start_routing_hub(offer_timeout=3, sla=QUICK_SLA)
    lin = open_page()
    lin_id = sign_in(lin, hub.url, LIN)
    set_profile(hub, lin_id, {"skills": {"tech": 3}, "languages": ["en"], "presence": "available"})
    lin.reload()
    expect(lin.get_by_test_id("presence-select")).to_have_value("available")

    customer = open_page()
    conv_id = customer_asks(customer, hub.url, "Hello, is anyone there?")

    offer = offer_card(lin, conv_id)
    expect(offer).to_be_visible()
    # Nobody answers: the offer goes, and the router sets Lin away (shown without a reload).
    expect(offer).to_be_hidden()
    expect(lin.get_by_test_id("presence-select")).to_have_value("away")
    assert presence_of(hub, lin_id) == "away"
    expect(lin.locator("#announcer")).to_contain_text("an offer was not answered in time")

    # No first response within 4 s: the row and the conversation show the breach.
    row = lin.locator(f'[data-testid="conversation-row"][data-conversation-id="{conv_id}"]')
    expect(row.get_by_test_id("sla-badge")).to_have_text("SLA breached")
    lin.reload()  # the badge is not lost with the page: the agent socket's first frame has it
    expect(row.get_by_test_id("sla-badge")).to_have_text("SLA breached")
    row.click()
    expect(lin.get_by_test_id("conv-sla")).to_contain_text("First response: SLA breached")
    expect(lin.get_by_test_id("conv-sla")).to_have_attribute("data-sla", "breach")
    lin.screenshot(path="/tmp/omnihub-routing-sla.png")
    # In Chinese too.
    lin.get_by_role("button", name="中文").click()
    expect(lin.get_by_test_id("conv-sla")).to_contain_text("首次响应：SLA 已超时")
    expect(lin.get_by_test_id("presence-select")).to_have_value("away")
    expect(lin.get_by_label("在线状态")).to_be_visible()

    # Signing out takes Lin out of routing, so no offer waits for someone who is gone.
    lin.get_by_role("button", name="退出登录").click()
    expect(lin.get_by_test_id("login-email")).to_be_visible()
    expect(lin.get_by_test_id("presence-select")).to_be_hidden()
    assert presence_of(hub, lin_id) == "offline"


def test_inbox_shows_no_routing_controls_when_routing_is_off(
    tmp_path: Path, open_page: Callable[..., Page]
) -> None:
    proc = start_live_hub(tmp_path)
    try:
        hub = LiveHub(proc)
        page = open_page()
        shared.sign_in(page, hub)
        customer = open_page()
        conv_id = customer_asks(customer, hub.url, "Routing is off here")
        row = page.locator(f'[data-testid="conversation-row"][data-conversation-id="{conv_id}"]')
        row.click()
        expect(page.get_by_test_id("assign-btn")).to_be_visible()
        expect(page.get_by_test_id("presence-select")).to_be_hidden()
        expect(page.get_by_test_id("offers")).to_be_hidden()
        expect(page.get_by_test_id("transfer-btn")).to_be_hidden()
        page.get_by_test_id("assign-btn").click()
        expect(page.get_by_test_id("conv-status")).to_have_text("Assigned")
        expect(page.get_by_test_id("transfer-btn")).to_be_hidden()
    finally:
        proc.stop()


def test_a_presence_chosen_in_one_tab_shows_in_the_agents_other_tab(
    start_routing_hub: Callable[..., RoutingHub], open_page: Callable[..., Page]
) -> None:
    hub = start_routing_hub()
    first = open_page()
    lin_id = sign_in(first, hub.url, LIN)
    set_profile(hub, lin_id, {"skills": {"tech": 2}, "presence": "away"})
    first.reload()
    second = first.context.new_page()  # the same signed-in browser: another tab
    second.goto(hub.url + "/inbox")
    for page in (first, second):
        expect(page.get_by_test_id("presence-select")).to_have_value("away")

    first.get_by_test_id("presence-select").select_option("available")
    expect(second.get_by_test_id("presence-select")).to_have_value("available")
    assert presence_of(hub, lin_id) == "available"
    second.get_by_test_id("presence-select").select_option("busy")
    expect(first.get_by_test_id("presence-select")).to_have_value("busy")
