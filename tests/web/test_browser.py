"""End-to-end browser tests: customer widget <-> agent inbox against a real running hub.

Drives Debian's headless Chromium through Playwright's sync API (no browser downloads).
Needs the `live_hub` fixture from tests/conftest.py (attributes: url, agent_email, agent_password).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import playwright.sync_api as playwright_sync
import pytest

Browser = playwright_sync.Browser
Page = playwright_sync.Page
expect = playwright_sync.expect

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Live updates cross two websockets and a database write; give them more than the 5 s default.
expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (make test does)")
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Each call opens a page in a fresh context (its own cookies and localStorage)."""
    contexts = []
    errors: list[str] = []

    def make(locale: str = "en-US", viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(
            locale=locale, viewport=viewport or {"width": 1280, "height": 800}
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], "JavaScript errors in the pages"


def widget_messages(page: Page, author: str):
    return page.locator(f'[data-testid="omnihub-message"][data-author="{author}"]')


def inbox_messages(page: Page, author: str):
    return page.locator(f'[data-testid="conv-message"][data-author="{author}"]')


def sign_in(page: Page, live_hub) -> None:
    page.goto(live_hub.url + "/inbox")
    page.get_by_test_id("login-email").fill(live_hub.agent_email)
    page.get_by_test_id("login-password").fill(live_hub.agent_password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()


def open_widget(page: Page) -> None:
    page.get_by_test_id("omnihub-launcher").click()
    expect(page.get_by_test_id("omnihub-panel")).to_be_visible()
    expect(page.get_by_test_id("omnihub-input")).to_be_focused()


def test_customer_and_agent_chat_live(live_hub, open_page) -> None:
    first = "Hello, I need help with my order"
    reply = "Hi! I can help."
    second = "Order 1234 never arrived."

    agent = open_page()
    agent.goto(live_hub.url + "/inbox")
    expect(agent.get_by_test_id("login-email")).to_be_visible()
    agent.get_by_test_id("login-email").fill(live_hub.agent_email)
    agent.get_by_test_id("login-password").fill("wrong password")
    agent.get_by_test_id("login-submit").click()
    expect(agent.get_by_test_id("login-error")).to_contain_text("Invalid email or password")
    sign_in(agent, live_hub)

    customer = open_page()
    customer.goto(live_hub.url + "/demo")
    open_widget(customer)
    log = customer.get_by_test_id("omnihub-log")
    expect(log).to_have_attribute("role", "log")
    expect(log).to_have_attribute("aria-live", "polite")
    customer.get_by_test_id("omnihub-input").fill(first)
    customer.get_by_test_id("omnihub-send").click()
    mine = widget_messages(customer, "customer").filter(has_text=first)
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine).to_have_attribute("aria-label", "You")
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
    assert conversation_id

    # The agent never reloads: the conversation arrives over the agent websocket.
    row = agent.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    )
    expect(row).to_contain_text(first)
    row.click()
    expect(inbox_messages(agent, "customer").filter(has_text=first)).to_be_visible()
    expect(agent.get_by_test_id("conv-messages")).to_have_attribute("aria-live", "polite")

    agent.get_by_test_id("reply-input").fill(reply)
    agent.get_by_test_id("reply-input").press("Enter")
    expect(inbox_messages(agent, "agent").filter(has_text=reply)).to_have_count(1)
    expect(agent.get_by_test_id("reply-input")).to_have_value("")
    expect(widget_messages(customer, "agent").filter(has_text=reply)).to_be_visible()

    # Typing reaches the agent before the message does.
    customer.get_by_test_id("omnihub-input").fill(second)
    expect(agent.get_by_test_id("typing-indicator")).to_be_visible()
    customer.get_by_test_id("omnihub-input").press("Enter")
    expect(inbox_messages(agent, "customer").filter(has_text=second)).to_be_visible()
    expect(row).to_contain_text(second)
    # The agent has the conversation open on a visible page: the customer sees it was read.
    expect(widget_messages(customer, "customer").filter(has_text=second)).to_have_attribute(
        "data-state", "read"
    )
    customer.screenshot(path="/tmp/omnihub-widget.png")
    agent.screenshot(path="/tmp/omnihub-inbox.png")

    # A reload resumes the same conversation with its whole history.
    customer.reload()
    open_widget(customer)
    expect(customer.get_by_test_id("omnihub-panel")).to_have_attribute(
        "data-conversation-id", conversation_id
    )
    expect(widget_messages(customer, "customer").locator(".omnihub-text")).to_have_text(
        [first, second]
    )
    expect(widget_messages(customer, "agent")).to_have_count(1)
    expect(widget_messages(customer, "agent")).to_contain_text(reply)

    status = agent.get_by_test_id("conv-status")
    agent.get_by_test_id("resolve-btn").click()
    expect(status).to_have_text("Resolved")
    expect(agent.get_by_test_id("reopen-btn")).to_be_visible()
    expect(agent.get_by_test_id("resolve-btn")).to_be_hidden()


def test_widget_speaks_chinese_when_asked(live_hub, open_page) -> None:
    page = open_page()
    body = (
        "<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>演示</title></head>"
        "<body><h1>ACME 商店</h1>"
        "<script src='/static/widget.js' data-lang='zh-CN' defer></script></body></html>"
    )
    # Start from a real hub page without the widget, then swap in our own markup: the document
    # keeps the hub's origin (localStorage, relative URLs) and its loopback address. A page made
    # by page.route().fulfill() has no address, so Chromium's Local Network Access checks would
    # block its websocket to 127.0.0.1.
    page.goto(live_hub.url + "/")
    page.set_content(body)
    expect(page.get_by_test_id("omnihub-launcher")).to_have_accessible_name("联系我们")
    open_widget(page)
    expect(page.get_by_test_id("omnihub-send")).to_have_text("发送")
    # Without data-telegram the widget offers no Telegram button.
    expect(page.get_by_test_id("omnihub-telegram")).to_be_hidden()
    expect(page.get_by_test_id("omnihub-input")).to_have_attribute("placeholder", "请输入消息…")

    page.get_by_test_id("omnihub-input").fill("你好，我的订单还没到")
    page.get_by_test_id("omnihub-input").press("Enter")
    sent = widget_messages(page, "customer").filter(has_text="你好，我的订单还没到")
    expect(sent).to_have_attribute("data-state", "sent")
    expect(sent).to_have_attribute("aria-label", "您")

    # Over the default 10,000-character limit (the widget learns it from the session): the
    # counter says so before sending, and a send is refused in the visitor's language with
    # the limit named, the text kept in the box.
    page.get_by_test_id("omnihub-input").fill("长" * 10_001)
    expect(page.get_by_test_id("omnihub-counter")).to_have_text("超出上限 10,000 字，多了 1 字")
    page.get_by_test_id("omnihub-send").click()
    expect(page.get_by_test_id("omnihub-error")).to_contain_text("消息超过 10,000 字的上限")
    expect(page.get_by_test_id("omnihub-input")).to_have_value("长" * 10_001)
    expect(widget_messages(page, "customer")).to_have_count(1)


def test_widget_is_keyboard_operable(live_hub, open_page) -> None:
    page = open_page()
    page.goto(live_hub.url + "/demo")
    launcher = page.get_by_test_id("omnihub-launcher")
    expect(launcher).to_be_visible()

    # The demo page has a handful of focus stops before the widget; Tab until we reach it.
    for _ in range(20):
        page.keyboard.press("Tab")
        if launcher.evaluate("el => el === document.activeElement"):
            break
    expect(launcher).to_be_focused()

    page.keyboard.press("Enter")
    expect(page.get_by_test_id("omnihub-panel")).to_be_visible()
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_test_id("omnihub-input")).to_be_focused()

    page.keyboard.type("First line")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    sent = widget_messages(page, "customer")
    expect(sent).to_have_count(1)
    expect(sent.locator(".omnihub-text")).to_have_js_property(
        "textContent", "First line\nsecond line"
    )
    expect(sent).to_have_attribute("data-state", "sent")
    expect(page.get_by_test_id("omnihub-input")).to_have_value("")

    page.keyboard.press("Escape")
    expect(page.get_by_test_id("omnihub-panel")).to_be_hidden()
    expect(launcher).to_be_focused()
    expect(launcher).to_have_attribute("aria-expanded", "false")


def test_a_file_the_agent_sends_reaches_the_widget(live_hub, open_page) -> None:
    customer = open_page()
    customer.goto(live_hub.url + "/demo")
    open_widget(customer)
    customer.get_by_test_id("omnihub-input").fill("Please send me the returns form")
    customer.get_by_test_id("omnihub-input").press("Enter")
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")

    agent = open_page()
    sign_in(agent, live_hub)
    agent.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    ).click()
    form = "Returns form: fill in and post back.\n"
    agent.get_by_test_id("reply-file").set_input_files(
        {"name": "returns form.txt", "mimeType": "text/plain", "buffer": form.encode()}
    )
    expect(agent.get_by_test_id("reply-files")).to_contain_text("returns form.txt")
    agent.get_by_test_id("reply-input").fill("Here you are")
    agent.get_by_test_id("reply-input").press("Enter")
    expect(agent.get_by_test_id("msg-attachment")).to_contain_text("returns form.txt")

    def check_link() -> None:
        reply = widget_messages(customer, "agent").filter(has_text="Here you are")
        link = reply.get_by_test_id("omnihub-file")
        expect(link).to_have_text("returns form.txt")
        expect(reply.locator(".omnihub-files")).to_contain_text(f"({len(form)} B)")
        href = link.get_attribute("href")
        assert href and "token=" in href
        # The page itself fetches the link: the bytes the agent attached, for this visitor.
        got = customer.evaluate("async (u) => await (await fetch(u)).text()", href)
        assert got == form

    check_link()
    customer.screenshot(path="/tmp/omnihub-widget-file.png")
    customer.reload()  # the file is in the history too
    open_widget(customer)
    check_link()


def test_the_customer_sends_a_file_from_the_widget(live_hub, open_page) -> None:
    customer = open_page()
    customer.goto(live_hub.url + "/demo")
    open_widget(customer)
    attach = customer.get_by_test_id("omnihub-attach")
    expect(attach).to_have_accessible_name("Send a file")
    # The keyboard reaches the file picker too: Enter on the button clicks the file input.
    # (Headless Chromium reports a chooser only for a pointer click, so that opens it below.)
    attach.focus()
    customer.evaluate(
        "document.querySelector('[data-testid=omnihub-file-input]')"
        ".addEventListener('click', () => { window.omnihubPicked = true; })"
    )
    customer.keyboard.press("Enter")
    assert customer.evaluate("window.omnihubPicked === true")
    with customer.expect_file_chooser() as chooser:
        attach.click()
    shot = b"\x89PNG\r\n\x1a\n" + b"\x00" * 120
    chooser.value.set_files({"name": "screenshot.png", "mimeType": "image/png", "buffer": shot})

    mine = widget_messages(customer, "customer").filter(has_text="screenshot.png")
    expect(mine).to_have_attribute("data-state", "sent")
    expect(mine.get_by_test_id("omnihub-file")).to_have_text("screenshot.png")
    expect(mine.locator(".omnihub-files")).to_contain_text("(128 B)")
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
    customer.screenshot(path="/tmp/omnihub-widget-upload.png")

    agent = open_page()
    sign_in(agent, live_hub)
    agent.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    ).click()
    link = agent.get_by_test_id("msg-attachment").filter(has_text="screenshot.png")
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    assert href
    got = agent.evaluate(
        "async (u) => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", href
    )
    assert bytes(got) == shot

    # Over the limit of files per message: the visitor is told, nothing is half-sent.
    with customer.expect_file_chooser() as chooser:
        attach.click()
    chooser.value.set_files(
        [{"name": f"f{i}.txt", "mimeType": "text/plain", "buffer": b"x"} for i in range(6)]
    )
    expect(customer.get_by_test_id("omnihub-error")).to_contain_text("at most 5 files")
    expect(widget_messages(customer, "customer").filter(has_text="f0.txt")).to_have_attribute(
        "data-state", "failed"
    )
