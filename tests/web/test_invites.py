"""The inbox's Telegram invite, in headless Chromium against `omnihub serve` with the Telegram
channel on, its bot talking to the Bot API stand-in (tests/channels/telegram/peer.py) on
loopback. The stand-in runs on an event loop of its own thread: these tests are synchronous."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.channels.telegram.peer import BOT_USER, TOKEN, BotApiPeer
from tests.conftest import LiveHub, start_live_hub
from tests.web import test_browser as shared

expect = shared.expect
Page = shared.Page

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page


@pytest.fixture
def bot_api() -> Iterator[BotApiPeer]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bot-api-peer", daemon=True)
    thread.start()

    async def start() -> BotApiPeer:
        return await BotApiPeer().start()

    peer = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield peer
    finally:
        asyncio.run_coroutine_threadsafe(peer.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture
def telegram_hub(tmp_path: Path, bot_api: BotApiPeer) -> Iterator[LiveHub]:
    channels = {
        "telegram": {
            "inboxes": {"helpdesk": {"token": TOKEN, "mode": "polling"}},
            "base_url": bot_api.base_url,
            "base_file_url": bot_api.base_file_url,
        }
    }
    proc = start_live_hub(tmp_path, OMNIHUB_CHANNELS=json.dumps(channels))
    try:
        yield LiveHub(proc)
    finally:
        proc.stop()


def test_an_agent_invites_a_web_chat_customer_to_telegram(
    telegram_hub: LiveHub, open_page: Callable[..., Page]
) -> None:
    customer = open_page()
    customer.goto(telegram_hub.url + "/demo")
    shared.open_widget(customer)
    customer.get_by_test_id("omnihub-input").fill("Can I continue this on my phone?")
    customer.get_by_test_id("omnihub-input").press("Enter")
    conv_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")

    agent = open_page()
    shared.sign_in(agent, telegram_hub)
    agent.locator(f'[data-testid="conversation-row"][data-conversation-id="{conv_id}"]').click()
    invite = agent.get_by_test_id("invite-btn")
    expect(invite).to_have_text("Invite to Telegram")
    invite.click()

    link = agent.get_by_test_id("invite-url")
    expect(link).to_be_focused()
    expect(link).to_have_value(re.compile(rf"^https://t\.me/{BOT_USER['username']}\?start=\S+$"))
    expect(agent.get_by_test_id("invite-box")).to_contain_text("It works until")
    expect(link).to_have_accessible_name("Telegram invite link")
    url = link.input_value()

    agent.get_by_test_id("invite-add").click()
    expect(agent.get_by_test_id("reply-input")).to_be_focused()
    expect(agent.get_by_test_id("reply-input")).to_have_value(url)
    agent.get_by_test_id("reply-input").press("Enter")
    expect(shared.widget_messages(customer, "agent").filter(has_text=url)).to_be_visible()

    # In Chinese too.
    agent.get_by_role("button", name="中文").click()
    expect(invite).to_have_text("邀请到 Telegram")


def test_a_web_chat_customer_continues_on_telegram_from_the_widget(
    telegram_hub: LiveHub, open_page: Callable[..., Page]
) -> None:
    page = open_page(locale="zh-CN")
    # A hub page without the widget, then the site's own markup: same origin and loopback
    # address as the hub (see test_widget_speaks_chinese_when_asked).
    page.goto(telegram_hub.url + "/")
    page.set_content(
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>店</title></head>"
        "<body><script src='/static/widget.js' data-lang='zh-CN' data-telegram='on' defer>"
        "</script></body></html>"
    )
    shared.open_widget(page)
    button = page.get_by_test_id("omnihub-telegram")
    expect(button).to_have_text("在 Telegram 上继续")
    button.click()
    link = page.get_by_test_id("omnihub-telegram-link")
    expect(link).to_be_focused()
    expect(link).to_have_text("打开 Telegram 并点击“开始”")
    expect(link).to_have_attribute(
        "href", re.compile(rf"^https://t\.me/{BOT_USER['username']}\?start=\S+$")
    )
    expect(link).to_have_attribute("target", "_blank")
