"""The demo page with the front-line bot on, in headless Chromium: the bot answers from the
demo FAQ, its "did this help?" buttons work, and asking for a person (in Chinese) hands the
conversation to the agent inbox."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveHub, start_live_hub
from tests.web import test_browser as shared

expect = shared.expect

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page


def _demo_faq_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/help/articles?lang=en", timeout=2) as resp:
            body = json.load(resp)
    except OSError:
        return False
    return any(a["id"] == "en-track-order" for a in body.get("articles", []))


@pytest.fixture
def bot_hub(tmp_path: Path) -> Iterator[LiveHub]:
    """`omnihub serve` as `make run` starts it: demo tenant, demo FAQ, bot on."""
    proc = start_live_hub(tmp_path, OMNIHUB_BOT_ENABLED="1")
    try:
        deadline = time.monotonic() + 60
        while not _demo_faq_ready(proc.url):  # the demo FAQ is seeded after start-up
            assert time.monotonic() < deadline, "the demo FAQ was not published within 60 s"
            time.sleep(0.3)
        yield LiveHub(proc)
    finally:
        proc.stop()


def test_bot_answers_takes_a_vote_and_hands_off(bot_hub: LiveHub, open_page) -> None:
    customer = open_page()
    customer.goto(bot_hub.url + "/demo")
    shared.open_widget(customer)
    customer.get_by_test_id("omnihub-input").fill("Where is my parcel?")
    customer.get_by_test_id("omnihub-input").press("Enter")

    answer = shared.widget_messages(customer, "bot").filter(has_text="How do I track my order?")
    expect(answer).to_be_visible()
    buttons = answer.get_by_test_id("omnihub-choice")
    expect(buttons).to_have_text(["Yes", "No"])
    buttons.filter(has_text="Yes").click()
    expect(shared.widget_messages(customer, "customer").filter(has_text="Yes")).to_have_attribute(
        "data-state", "sent"
    )
    thanks = shared.widget_messages(customer, "bot").filter(has_text="Glad I could help")
    expect(thanks).to_be_visible()
    expect(buttons.first).to_be_disabled()  # a question is answered once

    customer.get_by_test_id("omnihub-input").fill("转人工")
    customer.get_by_test_id("omnihub-input").press("Enter")
    expect(shared.widget_messages(customer, "bot").filter(has_text="人工客服")).to_be_visible()
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")

    agent = open_page()
    shared.sign_in(agent, bot_hub)
    row = agent.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    )
    expect(row).to_be_visible()
    row.click()
    bot_answer = shared.inbox_messages(agent, "bot").filter(has_text="How do I track my order?")
    expect(bot_answer).to_be_visible()
    # Why the bot handed over, for the agent who picks it up.
    handoff = agent.get_by_test_id("conv-handoff")
    expect(handoff).to_contain_text("Handed over by the bot")
    expect(handoff).to_contain_text("The customer asked for a person")
    customer.screenshot(path="/tmp/omnihub-widget-bot.png")
