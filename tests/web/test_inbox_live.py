"""The agent inbox stays right live: every live event (a new message, a hand-over, a reply
to a queued conversation, an assignment, a delivery, a CSAT rating) leaves the conversation
list and the open conversation exactly as a reload shows them. Headless Chromium against
`omnihub serve` with the front-line bot on, customers on the demo page's widget."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.web import test_browser as shared
from tests.web import test_widget_bot
from tests.web.accessibility import assert_accessible

expect = shared.expect
Page = shared.Page

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page
bot_hub = test_widget_bot.bot_hub  # the demo tenant with the front-line bot on

VISITOR = re.compile(r"^Visitor [0-9A-F]{4}$")  # the web chat's name for a nameless visitor

# What the agent sees, as text: each list row, the open conversation's header, hand-over
# card, contact panel and messages (hidden parts left out, as `innerText` does).
SNAPSHOT = """() => {
  const text = (sel) => [...document.querySelectorAll(sel)].map((n) => n.innerText);
  const one = (sel) => { const n = document.querySelector(sel); return n ? n.innerText : null; };
  return {
    rows: text('[data-testid="conversation-row"]'),
    head: one('#conv:not([hidden]) .conv-head'),
    handoff: one('#conv:not([hidden]) [data-testid="conv-handoff"]:not([hidden])'),
    others: one('#conv:not([hidden]) #others:not([hidden])'),
    messages: text('[data-testid="conv-message"]'),
    states: [...document.querySelectorAll('[data-testid="conv-message"]')]
      .map((n) => n.dataset.state || ""),
  };
}"""


def snapshot(page: Page) -> dict[str, Any]:
    return dict(page.evaluate(SNAPSHOT))


def row(page: Page, conversation_id: str):
    return page.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    )


def ask(customer: Page, text: str) -> None:
    customer.get_by_test_id("omnihub-input").fill(text)
    customer.get_by_test_id("omnihub-input").press("Enter")
    expect(
        shared.widget_messages(customer, "customer").filter(has_text=text).last
    ).to_have_attribute("data-state", "sent")


def conversation_of(customer: Page) -> str:
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
    assert conversation_id
    return conversation_id


def visitor(open_page, url: str, text: str) -> tuple[Page, str]:
    """A new visitor on the demo page asks something: their page and conversation id."""
    page = open_page()
    page.goto(url + "/demo")
    shared.open_widget(page)
    ask(page, text)
    return page, conversation_of(page)


def message_fields(page: Page, url: str) -> dict[str, Any]:
    """The message JSON's fields as this hub's API document describes them."""
    response = page.request.get(url + "/api/openapi.json")
    assert response.ok
    return dict(response.json()["components"]["schemas"]["MessageOut"]["properties"])


def same_after_reload(agent: Page, reopen: str, filter_label: str | None = None) -> None:
    """The live page's state, then the page reloaded (and the conversation reopened): equal."""
    live = snapshot(agent)
    agent.reload()
    expect(agent.get_by_test_id("agent-name")).not_to_be_empty()
    if filter_label:
        agent.get_by_role("button", name=filter_label, exact=True).click()
    expect(agent.get_by_test_id("conversation-row")).to_have_count(len(live["rows"]))
    row(agent, reopen).click()
    expect(agent.get_by_test_id("conv-message")).to_have_count(len(live["messages"]))
    try:  # the detail and list requests may land in either order: let both arrive
        agent.wait_for_function(
            f"(want) => JSON.stringify(({SNAPSHOT})()) === want", arg=json.dumps(live)
        )
    except shared.playwright_sync.TimeoutError:
        pass  # the assertion below shows the difference
    assert snapshot(agent) == live


def test_live_events_leave_the_inbox_as_a_reload_shows_it(bot_hub, open_page) -> None:
    agent = open_page()
    shared.sign_in(agent, bot_hub)

    # A customer asks about an order, then asks for a person: the bot hands over live.
    ana, ana_id = visitor(
        open_page, bot_hub.url, "Where is my parcel? My order A-12345 has not arrived"
    )
    tracking = shared.widget_messages(ana, "bot").filter(has_text="How do I track my order?")
    expect(tracking).to_be_visible()
    ask(ana, "talk to a human please, my email is ana@example.com")
    expect(shared.widget_messages(ana, "bot").filter(has_text="colleague")).to_be_visible()

    ana_row = row(agent, ana_id)
    expect(ana_row).to_contain_text("Queued")
    # The row keeps its last-message preview through the status change.
    expect(ana_row).to_contain_text("colleague")

    # Opening it marks the customer's messages read up to the newest (contract 4's marker).
    with agent.expect_request(lambda r: r.method == "POST" and r.url.endswith("/read")) as read:
        ana_row.click()
    newest = shared.inbox_messages(agent, "customer").last.get_attribute("data-message-id")
    assert read.value.url.endswith(f"/api/conversations/{ana_id}/read")
    assert json.loads(read.value.post_data or "{}") == {"up_to": int(newest or 0)}
    card = agent.get_by_test_id("conv-handoff")
    expect(card).to_contain_text("The customer asked for a person")
    summary = card.get_by_test_id("handoff-summary")
    expect(summary).to_contain_text("Where is my parcel? My order A-12345 has not arrived")
    expect(summary).to_contain_text("my email is ana@example.com")
    details = card.get_by_test_id("handoff-details")
    expect(details).to_contain_text("Order number")
    expect(details).to_contain_text("A-12345")
    expect(details).to_contain_text("ana@example.com")
    agent.screenshot(path="/tmp/omnihub-inbox-handover.png")
    fold = card.get_by_test_id("handoff-toggle")  # the card folds to its title and back
    fold.click()
    expect(fold).to_have_attribute("aria-expanded", "false")
    expect(summary).to_be_hidden()
    fold.click()
    expect(summary).to_be_visible()
    answer = shared.inbox_messages(agent, "bot").filter(has_text="How do I track my order?")
    if "html" in message_fields(agent, bot_hub.url):
        # The hub's sanitised HTML (contract 1): the article link is a link.
        link = answer.locator('a[href*="/help/articles/"]')
        expect(link).to_have_attribute("target", "_blank")
    else:  # plain text, escaped, line breaks kept
        expect(answer.locator("p.msg-text")).to_contain_text("/help/articles/")
        expect(answer.locator("a")).to_have_count(0)
    assert_accessible(agent)

    # A reply to the queued conversation assigns it: status and preview change together.
    agent.get_by_test_id("reply-input").fill("Hello Ana, I am looking at order A-12345.")
    agent.get_by_test_id("reply-input").press("Enter")
    expect(ana_row).to_contain_text("Assigned")
    expect(ana_row).to_contain_text("I am looking at order A-12345")
    mine = shared.inbox_messages(agent, "agent").filter(has_text="I am looking at")
    # The delivery event, live (the widget may have reported it delivered or read already).
    expect(mine).to_have_attribute("data-state", re.compile(r"^(sent|delivered|read)$"))
    tick = mine.get_by_test_id("msg-delivery")
    expect(tick).to_have_accessible_name(re.compile(r"^(Sent|Delivered|Read)$"))
    expect(shared.widget_messages(ana, "agent")).to_contain_text("I am looking at order")

    # The customer answers while the conversation is open (and read at once); another
    # conversation arrives meanwhile.
    with agent.expect_request(lambda r: r.method == "POST" and r.url.endswith("/read")) as read:
        ask(ana, "Thanks, it was due on Monday")
    expect(ana_row).to_contain_text("it was due on Monday")
    thanks = shared.inbox_messages(agent, "customer").filter(has_text="due on Monday")
    expect(thanks).to_be_visible()
    assert json.loads(read.value.post_data or "{}") == {
        "up_to": int(thanks.get_attribute("data-message-id") or 0)
    }
    _, bo_id = visitor(open_page, bot_hub.url, "agent")
    expect(row(agent, bo_id)).to_contain_text("Queued")
    expect(row(agent, bo_id)).to_contain_text("colleague")

    same_after_reload(agent, ana_id)

    # The agent resolves; the bot asks the customer for a rating; the score shows live.
    agent.get_by_test_id("resolve-btn").click()
    rating = (
        shared.widget_messages(ana, "bot").filter(has_text="rate").get_by_test_id("omnihub-choice")
    )
    rating.filter(has_text="4").click()
    csat = agent.get_by_test_id("conv-csat")
    expect(csat).to_have_text("Rating 4/5")
    expect(ana_row).to_have_count(0)  # resolved again: out of the open list
    agent.get_by_role("button", name="Resolved", exact=True).click()
    expect(ana_row).to_contain_text("4/5")
    agent.screenshot(path="/tmp/omnihub-inbox-csat.png")
    assert_accessible(agent)
    same_after_reload(agent, ana_id, "Resolved")


def test_the_inbox_speaks_one_language(live_hub, open_page) -> None:
    _, conversation_id = visitor(open_page, live_hub.url, "Hello, anyone there?")

    agent = open_page()
    shared.sign_in(agent, live_hub)
    name_row = row(agent, conversation_id)
    expect(name_row.locator(".row-name")).to_have_text(VISITOR)
    code = name_row.locator(".row-name").inner_text().split()[-1]
    expect(agent.get_by_test_id("kb-link")).to_have_text("Knowledge base")

    agent.get_by_role("button", name="中文").click()
    expect(agent.get_by_test_id("kb-link")).to_have_text("知识库")
    expect(name_row.locator(".row-name")).to_have_text(f"访客 {code}")
    name_row.click()
    expect(agent.locator("#conv-title")).to_have_text(f"访客 {code}")
    expect(
        shared.inbox_messages(agent, "customer").filter(has_text="anyone there")
    ).to_have_attribute("aria-label", f"访客 {code}")
    assert_accessible(agent)


def test_a_conversation_assigned_elsewhere_arrives_with_its_preview(live_hub, open_page) -> None:
    _, conversation_id = visitor(open_page, live_hub.url, "My parcel came damaged")

    mine = open_page()  # this tab watches "Mine", empty so far
    shared.sign_in(mine, live_hub)
    mine.get_by_role("button", name="Mine", exact=True).click()
    expect(mine.get_by_test_id("conversation-row")).to_have_count(0)

    other_tab = open_page()  # the same agent takes it in another tab
    shared.sign_in(other_tab, live_hub)
    row(other_tab, conversation_id).click()
    other_tab.get_by_test_id("assign-btn").click()
    expect(other_tab.get_by_test_id("conv-status")).to_have_text("Assigned")

    taken = row(mine, conversation_id)
    expect(taken).to_contain_text("Assigned")
    expect(taken).to_contain_text("My parcel came damaged")
    taken.click()
    expect(shared.inbox_messages(mine, "customer")).to_have_count(1)
    same_after_reload(mine, conversation_id, "Mine")
