"""Learning from traffic in the browser (issue #22), headless Chromium against a real hub.

A customer talks to the bot in the web-chat widget and says which answers helped; an agent
answers a handed-off question with the inbox's "Insert article"; an editor decides on the
suggestions in /kb, one at a time, in bulk and per article, and saves a gap cluster as a draft.
Every page state checked is also checked with axe-core.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Locator

from tests.conftest import LiveHub
from tests.web import test_browser as shared
from tests.web import test_widget_bot
from tests.web.accessibility import assert_accessible
from tests.web.test_kb_editor import ask_console, notice

Page = shared.Page
expect = shared.expect

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

HELPED = {  # questions the demo FAQ answers, none of them one of its questions yet
    "Where has my parcel got to?": "How do I track my order?",
    "How long until my money comes back?": "When do I get my refund?",
    "Is it possible to send an item back?": "How do I return an item?",
    "I lost my password": "I forgot my password",
}


bot_hub = test_widget_bot.bot_hub  # the demo hub with its FAQ and the bot on


def say(customer: Page, text: str) -> None:
    customer.get_by_test_id("omnihub-input").fill(text)
    customer.get_by_test_id("omnihub-input").press("Enter")


def helped(customer: Page, question: str, title: str) -> None:
    """Ask, get the article as the answer, say it helped."""
    say(customer, question)
    answer = shared.widget_messages(customer, "bot").filter(has_text=title).last
    expect(answer).to_be_visible()
    answer.get_by_test_id("omnihub-choice").filter(has_text="Yes").click()
    thanks = shared.widget_messages(customer, "bot").filter(has_text="Glad I could help")
    expect(thanks).to_have_count(list(HELPED).index(question) + 1)


def sign_in_kb(page: Page, hub: LiveHub) -> None:
    page.goto(hub.url + "/kb")
    page.get_by_test_id("login-email").fill(hub.agent_email)
    page.get_by_test_id("login-password").fill(hub.agent_password)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()


def row(page: Page, question: str) -> Locator:
    return page.get_by_test_id("sugg-row").filter(has_text=question)


def test_editor_decides_on_suggestions_learned_from_traffic(
    bot_hub: LiveHub, open_page: Callable[..., Page]
) -> None:
    customer = open_page()
    customer.goto(bot_hub.url + "/demo")
    shared.open_widget(customer)
    for question, title in HELPED.items():
        helped(customer, question, title)

    page = open_page()
    sign_in_kb(page, bot_hub)
    count = page.get_by_test_id("suggestions-count")
    expect(count).to_have_text("4")
    # Per article: the article's own editor says what waits for it and leads there.
    page.get_by_test_id("article-row").filter(has_text="When do I get my refund?").click()
    waiting = page.get_by_test_id("suggested-open")
    expect(waiting).to_have_text("Suggested questions waiting: 1")
    expect(page.get_by_test_id("question-input")).to_have_count(5)  # nothing added yet
    waiting.click()
    expect(page.get_by_test_id("tab-suggestions")).to_be_focused()
    expect(page.get_by_test_id("sugg-row")).to_have_count(1)
    expect(row(page, "How long until my money comes back?")).to_contain_text(
        "said the bot's answer helped"
    )
    page.get_by_test_id("sugg-article").select_option("")
    expect(page.get_by_test_id("sugg-row")).to_have_count(4)
    assert_accessible(page)

    # One click: accept one, reject another.
    row(page, "Where has my parcel got to?").get_by_test_id("sugg-accept").click()
    expect(notice(page)).to_have_text("Added 1 question to its article.")
    expect(count).to_have_text("3")
    row(page, "I lost my password").get_by_test_id("sugg-reject").click()
    expect(notice(page)).to_have_text("Rejected 1 suggestion.")
    expect(page.get_by_test_id("sugg-row")).to_have_count(2)

    # In bulk, by keyboard: "Select all" with Space, then the bulk button.
    select_all = page.get_by_test_id("sugg-all")
    select_all.focus()
    page.keyboard.press("Space")
    accept_all = page.get_by_test_id("sugg-accept-selected")
    expect(accept_all).to_have_text("Accept selected (2)")
    expect(accept_all).to_be_enabled()
    assert_accessible(page)
    accept_all.focus()
    page.keyboard.press("Enter")
    expect(notice(page)).to_have_text("Added 2 questions to their articles.")
    expect(page.get_by_test_id("sugg-row")).to_have_count(0)
    expect(page.get_by_test_id("sugg-empty")).to_be_visible()
    expect(count).to_be_hidden()

    page.get_by_test_id("sugg-status").select_option("accepted")
    expect(page.get_by_test_id("sugg-row")).to_have_count(3)
    expect(page.get_by_test_id("sugg-select")).to_have_count(0)  # decided: nothing to tick

    # The accepted question is in the published article, as a new version.
    page.get_by_test_id("tab-articles").click()
    page.get_by_test_id("article-row").filter(has_text="How do I track my order?").click()
    expect(page.get_by_test_id("editor-status")).to_have_text("Published")
    expect(page.get_by_test_id("editor-version")).to_have_text("Version 2")
    expect(page.get_by_test_id("question-input").last).to_have_value("Where has my parcel got to?")
    expect(page.get_by_test_id("suggested-open")).to_be_hidden()  # nothing waits for it now

    # The same in Chinese.
    page.get_by_role("button", name="中文").click()
    page.get_by_test_id("tab-suggestions").click()
    expect(page.get_by_test_id("tab-suggestions")).to_contain_text("建议问法")
    expect(page.get_by_test_id("sugg-row").first).to_contain_text("客户表示机器人的回答有帮助")
    assert_accessible(page)


def test_agent_inserts_an_article_and_a_gap_cluster_becomes_a_draft(
    bot_hub: LiveHub, open_page: Callable[..., Page]
) -> None:
    customer = open_page()
    customer.goto(bot_hub.url + "/demo")
    shared.open_widget(customer)
    asked = "Do you accept qqzz crypto coins?"
    say(customer, "zxqv wplkj mnbvc")
    expect(shared.widget_messages(customer, "bot").filter(has_text="couldn't find")).to_be_visible()
    say(customer, asked)
    expect(
        shared.widget_messages(customer, "bot").filter(has_text="passing you to a colleague")
    ).to_be_visible()
    conversation_id = customer.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")

    agent = open_page()
    shared.sign_in(agent, bot_hub)
    agent.locator(
        f'[data-testid="conversation-row"][data-conversation-id="{conversation_id}"]'
    ).click()
    insert = agent.get_by_test_id("insert-article")
    insert.click()
    expect(insert).to_have_attribute("aria-expanded", "true")
    expect(agent.get_by_test_id("article-q")).to_be_focused()
    agent.keyboard.type("payment methods")
    result = agent.get_by_test_id("article-result").filter(
        has_text="Which payment methods do you accept?"
    )
    expect(result).to_have_count(1)
    assert_accessible(agent)
    result.click()
    reply = agent.get_by_test_id("reply-input")
    expect(reply).to_be_focused()
    expect(reply).to_have_value(
        re.compile(
            r"\*\*Which payment methods do you accept\?\*\*.*/help/articles/en-payment-methods\)",
            re.S,
        )
    )
    expect(insert).to_have_attribute("aria-expanded", "false")
    agent.get_by_test_id("reply-send").click()
    expect(
        shared.widget_messages(customer, "agent").filter(has_text="Which payment methods")
    ).to_be_visible()

    editor = open_page()
    sign_in_kb(editor, bot_hub)
    editor.get_by_test_id("tab-suggestions").click()
    suggestion = row(editor, asked)
    expect(suggestion).to_contain_text("an agent inserted the article")
    expect(suggestion).to_contain_text("Which payment methods do you accept?")

    # Gap cluster -> a saved draft with the cluster's questions; never published.
    for question in ("do you sell saddles for unicorns", "can I buy a unicorn saddle"):
        ask_console(editor, question)
    editor.get_by_test_id("tab-gaps").click()
    group = editor.get_by_test_id("gap-group").filter(has_text="unicorn").first
    expect(group).to_be_visible()
    cluster = group.locator("ul li").all_inner_texts()
    assert_accessible(editor)
    group.get_by_test_id("gap-draft").click()
    expect(notice(editor)).to_contain_text("it is not published")
    expect(editor.get_by_test_id("tab-articles")).to_have_attribute("aria-selected", "true")
    expect(editor.get_by_test_id("editor-status")).to_have_text("Draft")
    values = [q.input_value() for q in editor.get_by_test_id("question-input").all()]
    assert values == cluster
    assert_accessible(editor)
