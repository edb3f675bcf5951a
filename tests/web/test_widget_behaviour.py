"""The widget as the best chat widgets behave, in headless Chromium against a real hub:
replies scroll into view (or a "new messages" pill when the customer scrolled up), focus never
falls to the page body, the text limit is shown before it is hit, Sent -> Seen ticks and read
receipts, an offline banner with an outbox that resends on reconnect."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import APIRequestContext, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import LiveHub, start_live_hub
from tests.support import AGENT_EMAIL, AGENT_PASSWORD
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible
from tests.web.test_widget_bot import _demo_faq_ready

expect = shared.expect
# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page  # each call: a fresh context (own localStorage), locale, viewport

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 780}

# Geometry of the newest entry against the log, in CSS pixels: `fits` is what the customer must
# see (the whole message, or its top at the top when it is taller than the log).
GEOMETRY_JS = """(sel) => {
  const log = document.querySelector('[data-testid=omnihub-log]');
  const all = document.querySelectorAll(sel);
  const msg = all[all.length - 1];
  if (!msg) return null;
  const l = log.getBoundingClientRect(), m = msg.getBoundingClientRect();
  const pad = parseFloat(getComputedStyle(log).paddingTop) || 0;
  const whole = m.top >= l.top - 1 && m.bottom <= l.bottom + 1;
  const tallTopAtTop = m.height > l.height - 2 * pad && Math.abs(m.top - (l.top + pad)) <= 2;
  return {log: [l.top, l.bottom], msg: [m.top, m.bottom], fits: whole || tallTopAtTop,
          scrollTop: log.scrollTop};
}"""


def geometry(page: Page, author: str) -> dict[str, Any]:
    sel = f'[data-testid="omnihub-message"][data-author="{author}"]'
    return dict(page.evaluate(GEOMETRY_JS, sel))


def assert_latest_in_view(page: Page, author: str) -> None:
    """Waits (by polling the page, no sleep) for the newest `author` message to be in view."""
    sel = f'[data-testid="omnihub-message"][data-author="{author}"]'
    try:
        page.wait_for_function(f"(sel) => ({GEOMETRY_JS})(sel)?.fits", arg=sel, timeout=5_000)
    except PlaywrightTimeout:
        pass
    got = geometry(page, author)
    assert got["fits"], f"the newest {author} message is not in view: {got}"


@pytest.fixture(scope="module")
def bot_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """`omnihub serve` as `make run` starts it (bot on), shared by this module's bot tests:
    each browser context is a new visitor with a conversation of its own."""
    proc = start_live_hub(tmp_path_factory.mktemp("bot-hub"), OMNIHUB_BOT_ENABLED="1")
    try:
        deadline = time.monotonic() + 60  # the demo FAQ is seeded after start-up
        while not _demo_faq_ready(proc.url):
            assert time.monotonic() < deadline, "the demo FAQ was not published within 60 s"
            time.sleep(0.3)
        yield LiveHub(proc)
    finally:
        proc.stop()


class AgentApi:
    """The demo agent over REST from the browser's request context (cookie + CSRF)."""

    def __init__(self, request: APIRequestContext, url: str):
        self.request, self.url = request, url
        resp = request.post(
            url + "/api/auth/login", data={"email": AGENT_EMAIL, "password": AGENT_PASSWORD}
        )
        assert resp.ok, resp.text()
        self.csrf = resp.json()["csrf_token"]

    def post(self, path: str, body: dict[str, Any]) -> Any:
        resp = self.request.post(self.url + path, data=body, headers={"X-CSRF-Token": self.csrf})
        assert resp.ok, resp.text()
        return resp.json() if resp.status != 204 else None

    def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        resp = self.request.get(f"{self.url}/api/conversations/{conversation_id}")
        assert resp.ok, resp.text()
        return list(resp.json()["messages"])


def ask(page: Page, text: str) -> None:
    page.get_by_test_id("omnihub-input").fill(text)
    page.get_by_test_id("omnihub-input").press("Enter")


QUESTIONS = {
    "en-US": [
        ("Where is my parcel?", "How do I track my order?"),
        ("How do I reset my password?", "I forgot my password"),
        ("How long does delivery take?", "Shipping times and costs"),
    ],
    "zh-CN": [
        ("我的订单到哪了？", "如何查询订单物流"),
        ("怎么重置密码？", "忘记密码怎么办"),
        ("多久能送到？", "配送时间和运费"),
    ],
}


@pytest.mark.parametrize("viewport", ["desktop", "phone"])
@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_three_questions_in_a_row_leave_the_last_reply_in_view(
    bot_hub: LiveHub, open_page, tmp_path: Path, locale: str, viewport: str
) -> None:
    page = open_page(locale, DESKTOP if viewport == "desktop" else PHONE)
    page.goto(bot_hub.url + "/demo")
    shared.open_widget(page)
    for n, (question, title) in enumerate(QUESTIONS[locale], start=1):
        ask(page, question)
        replies = shared.widget_messages(page, "bot")
        expect(replies).to_have_count(n)
        expect(replies.last).to_contain_text(title)
        expect(replies.last.get_by_test_id("omnihub-choice").first).to_be_visible()
        assert_latest_in_view(page, "bot")
    shot = tmp_path / f"widget-{viewport}-{locale}.png"
    page.screenshot(path=str(shot))
    assert shot.stat().st_size > 0
    # The geometry the screenshot shows, read back from the same page.
    got = geometry(page, "bot")
    assert got["fits"], got
    assert_accessible(page)


def test_quick_replies_keep_focus_in_the_chat_and_retire(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    page.goto(bot_hub.url + "/demo")
    shared.open_widget(page)
    ask(page, "Where is my parcel?")
    answer = shared.widget_messages(page, "bot").filter(has_text="How do I track my order?")
    yes = answer.get_by_test_id("omnihub-choice").filter(has_text="Yes")
    expect(yes).to_be_enabled()
    for _ in range(6):  # back from the input to the buttons, by keyboard only
        page.keyboard.press("Shift+Tab")
        if yes.evaluate("el => el === document.activeElement"):
            break
    expect(yes).to_be_focused()
    page.keyboard.press("Enter")
    expect(shared.widget_messages(page, "customer").filter(has_text="Yes")).to_have_attribute(
        "data-state", "sent"
    )
    expect(yes).to_be_disabled()
    input_box = page.get_by_test_id("omnihub-input")
    expect(input_box).to_be_focused()
    assert page.evaluate("document.activeElement !== document.body")
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("omnihub-panel")).to_be_hidden()
    expect(page.get_by_test_id("omnihub-launcher")).to_be_focused()

    # A question left unanswered, then a hand-over: its buttons are inert too.
    page.keyboard.press("Enter")
    expect(input_box).to_be_focused()
    ask(page, "How do I reset my password?")
    second = shared.widget_messages(page, "bot").filter(has_text="I forgot my password")
    expect(second.get_by_test_id("omnihub-choice").first).to_be_enabled()
    ask(page, "I want to talk to a person")
    expect(shared.widget_messages(page, "bot")).to_have_count(4)
    for button in second.get_by_test_id("omnihub-choice").all():
        expect(button).to_be_disabled()
    assert_accessible(page)


def _chat(page: Page, live_hub: LiveHub) -> tuple[AgentApi, str]:
    page.goto(live_hub.url + "/demo")
    shared.open_widget(page)
    ask(page, "Hello, I have a question about my order")
    mine = shared.widget_messages(page, "customer")
    expect(mine).to_have_attribute("data-state", "sent")
    conversation_id = page.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
    assert conversation_id
    return AgentApi(page.context.request, live_hub.url), conversation_id


LONG_REPLY = "Let me check that for you. " * 12


@pytest.mark.parametrize(
    ("locale", "pill_text", "seen"),
    [("en-US", "New messages ↓", "Seen"), ("zh-CN", "新消息 ↓", "已读")],
)
def test_agent_replies_scroll_in_unless_the_customer_reads_above(
    live_hub: LiveHub, open_page, tmp_path: Path, locale: str, pill_text: str, seen: str
) -> None:
    page = open_page(locale)
    agent, conv = _chat(page, live_hub)
    path = f"/api/conversations/{conv}/messages"
    for n in range(1, 7):
        agent.post(path, {"text": f"Reply {n}. {LONG_REPLY}"})
        expect(shared.widget_messages(page, "agent")).to_have_count(n)
        assert_latest_in_view(page, "agent")
    pill = page.get_by_test_id("omnihub-new-messages")
    expect(pill).to_be_hidden()

    # The customer scrolls up to read: a new reply does not pull the log away from them.
    page.get_by_test_id("omnihub-log").hover()
    page.mouse.wheel(0, -5000)
    page.wait_for_function(
        "document.querySelector('[data-testid=omnihub-log]').scrollTop === 0", timeout=5_000
    )
    agent.post(path, {"text": "Reply 7: found it."})
    expect(shared.widget_messages(page, "agent")).to_have_count(7)
    expect(pill).to_be_visible()
    expect(pill).to_have_text(pill_text)
    page.screenshot(path=str(tmp_path / f"widget-pill-{locale}.png"))
    got = geometry(page, "agent")
    assert got["scrollTop"] == 0 and not got["fits"], got
    # Receipts follow what the customer saw: the replies in view were read, the new one only
    # delivered while it waits below.
    wait_for_reply_states(page, conv, ["read"] * 6 + ["delivered"])

    # Keyboard: back from the input to the pill, Enter jumps down; focus stays in the chat.
    page.get_by_test_id("omnihub-input").focus()
    page.keyboard.press("Shift+Tab")
    expect(pill).to_be_focused()
    page.keyboard.press("Enter")
    assert_latest_in_view(page, "agent")
    expect(pill).to_be_hidden()
    assert page.evaluate("document.activeElement !== document.body")
    expect(page.get_by_test_id("omnihub-log")).to_be_focused()

    # Jumped down to it: now it is read too.
    wait_for_reply_states(page, conv, ["read"] * 7)

    # The agent reads the customer's message: Sent becomes Seen in the widget.
    mine = shared.widget_messages(page, "customer")
    first_id = next(m["id"] for m in agent.messages(conv) if m["author"] == "customer")
    agent.post(f"/api/conversations/{conv}/read", {"up_to": first_id})
    expect(mine).to_have_attribute("data-state", "read")
    expect(mine.locator(".omnihub-state")).to_have_text(seen)
    assert_accessible(page)

    # With the chat closed a reply is only delivered; opening the chat reads it.
    page.get_by_test_id("omnihub-input").press("Escape")
    expect(page.get_by_test_id("omnihub-panel")).to_be_hidden()
    agent.post(path, {"text": "One more thing."})
    expect(page.get_by_test_id("omnihub-launcher")).to_have_accessible_name(
        re.compile("new message|新消息")
    )
    wait_for_reply_states(page, conv, ["read"] * 7 + ["delivered"])
    page.get_by_test_id("omnihub-launcher").click()
    wait_for_reply_states(page, conv, ["read"] * 8)
    # A reload shows Seen from the history.
    page.reload()
    shared.open_widget(page)
    expect(shared.widget_messages(page, "customer")).to_have_attribute("data-state", "read")


def wait_for_reply_states(page: Page, conversation_id: str, want: list[str]) -> None:
    """Until the hub's REST view of the agent replies shows `want` (the page's context holds
    the agent's session cookie; Playwright re-runs the fetch until it is true)."""
    page.wait_for_function(
        """async ([conv, want]) => {
          const r = await fetch(`/api/conversations/${conv}`, {cache: 'no-store'});
          const states = (await r.json()).messages
            .filter((m) => m.author === 'agent').map((m) => m.delivery_state);
          return JSON.stringify(states) === JSON.stringify(want);
        }""",
        arg=[conversation_id, want],
        polling=200,
    )


def test_offline_shows_a_banner_and_sends_the_outbox_on_reconnect(
    live_hub: LiveHub, open_page, tmp_path: Path
) -> None:
    page = open_page()
    agent, conv = _chat(page, live_hub)
    status = page.get_by_role("status").filter(has_text="offline")

    page.context.set_offline(True)
    expect(status).to_be_visible()
    expect(status).to_contain_text("You are offline")
    ask(page, "Typed while offline")
    ask(page, "And one more")
    pending = shared.widget_messages(page, "customer")
    expect(pending.nth(1)).to_have_attribute("data-state", "sending")
    expect(pending.nth(1).locator(".omnihub-state")).to_have_text("Sending…")
    expect(pending.nth(2)).to_have_attribute("data-state", "sending")
    page.screenshot(path=str(tmp_path / "widget-offline.png"))
    assert_accessible(page)

    page.context.set_offline(False)
    expect(pending.nth(1)).to_have_attribute("data-state", "sent")
    expect(pending.nth(2)).to_have_attribute("data-state", "sent")
    expect(pending.nth(2).locator(".omnihub-state")).to_have_text("Sent")
    expect(page.locator(".omnihub-status")).to_be_empty()
    # Each stored once, in order.
    texts = [m["text"] for m in agent.messages(conv) if m["author"] == "customer"]
    assert texts == [
        "Hello, I have a question about my order",
        "Typed while offline",
        "And one more",
    ]


def test_a_refused_long_text_goes_back_in_the_box(live_hub: LiveHub, open_page) -> None:
    page = open_page()
    # A message too long for the hub waits in the outbox (as an older widget could have left
    # it): the hub refuses it on reconnect, and the text is put back, with the limit named.
    page.goto(live_hub.url + "/")
    long_text = "x" * 10_001
    page.evaluate(
        """t => localStorage.setItem('omnihub.webchat.unacked', JSON.stringify(
             [{client_id: 'c-long', text: t, created_at: new Date().toISOString()}]))""",
        long_text,
    )
    page.goto(live_hub.url + "/demo")
    page.get_by_test_id("omnihub-launcher").click()
    expect(page.get_by_test_id("omnihub-error")).to_contain_text("limit of 10,000 characters")
    expect(page.get_by_test_id("omnihub-input")).to_have_value(long_text)
    expect(shared.widget_messages(page, "customer")).to_have_count(0)
    expect(page.get_by_test_id("omnihub-counter")).to_have_text(
        "Over the limit of 10,000 characters by 1"
    )
    # Shortened below the limit the counter says how much room is left, and it goes out.
    page.get_by_test_id("omnihub-input").fill("y" * 9_000)
    expect(page.get_by_test_id("omnihub-counter")).to_have_text("Characters left: 1,000 of 10,000")
    page.get_by_test_id("omnihub-input").fill("short now")
    expect(page.get_by_test_id("omnihub-counter")).to_be_hidden()
    page.get_by_test_id("omnihub-input").press("Enter")
    expect(shared.widget_messages(page, "customer")).to_have_attribute("data-state", "sent")
    assert_accessible(page)
