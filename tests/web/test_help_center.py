"""The public help center (/help) in headless Chromium against `omnihub serve` with the demo
FAQ: the list, a search ranked like the bot's, an article page, a vote that reaches the
article's counts, and the Chinese interface with the Chinese articles."""

from __future__ import annotations

import http.cookiejar
import json
import urllib.request
from typing import Any

from tests.conftest import LiveHub
from tests.web import test_browser as shared
from tests.web import test_widget_bot
from tests.web.accessibility import assert_accessible

expect = shared.expect

# pytest finds fixtures among module attributes: share the browser and demo-FAQ ones.
browser = shared.browser
open_page = shared.open_page
bot_hub = test_widget_bot.bot_hub


def _article_as_agent(hub: LiveHub, article_id: str) -> dict[str, Any]:
    jar = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    login = json.dumps({"email": hub.agent_email, "password": hub.agent_password}).encode()
    jar.open(
        urllib.request.Request(
            hub.url + "/api/auth/login", login, {"Content-Type": "application/json"}
        ),
        timeout=10,
    ).close()
    with jar.open(hub.url + f"/api/kb/articles/{article_id}", timeout=10) as resp:
        return dict(json.load(resp))


def test_customer_searches_reads_and_votes(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    page.goto(bot_hub.url + "/help")
    articles = page.get_by_test_id("help-articles").locator("a")
    expect(articles.filter(has_text="How do I track my order?")).to_be_visible()

    page.get_by_test_id("help-search").fill("where is my parcel")
    page.get_by_test_id("help-search").press("Enter")
    page.wait_for_url("**/help?q=where*")
    expect(articles.first).to_have_text("How do I track my order?")  # the bot's best answer

    articles.first.click()
    page.wait_for_url("**/help/articles/en-track-order")
    article = page.get_by_test_id("help-article")
    expect(article.locator("h1")).to_have_text("How do I track my order?")
    expect(article.locator("strong").first).to_be_visible()  # Markdown rendered, not shown raw
    assert "**" not in article.inner_text()

    before = _article_as_agent(bot_hub, "en-track-order")["helpful"]
    page.get_by_test_id("help-yes").click()
    expect(page.get_by_test_id("help-feedback-status")).to_have_text("Thank you for your feedback.")
    assert _article_as_agent(bot_hub, "en-track-order")["helpful"] == before + 1


def test_help_center_in_chinese(bot_hub: LiveHub, open_page) -> None:
    page = open_page(locale="zh-CN")
    page.goto(bot_hub.url + "/help")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.get_by_test_id("help-search")).to_have_attribute("placeholder", "输入您的问题…")
    articles = page.get_by_test_id("help-articles").locator("a")
    expect(articles.filter(has_text="如何查询订单物流？")).to_be_visible()
    expect(articles.filter(has_text="How do I track my order?")).to_have_count(0)

    page.goto(bot_hub.url + "/help/articles/no-such-article")
    expect(page.get_by_role("alert")).to_have_text("该文章不存在或已下线。")

    page.get_by_test_id("help-lang").click()  # back to English, remembered for next time
    expect(page.get_by_test_id("help-search")).to_have_attribute("placeholder", "Ask a question…")


def test_the_delivery_table_is_a_real_table(bot_hub: LiveHub, open_page) -> None:
    """Issue 18: the demo FAQ's table ran into one paragraph of pipes."""
    page = open_page()
    page.goto(bot_hub.url + "/help/articles/en-shipping-times")
    article = page.get_by_test_id("help-article")
    table = article.locator("table")
    expect(table).to_be_visible()
    expect(table.get_by_role("columnheader")).to_have_text(["Delivery", "Cost"])
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").last.locator("td")).to_have_text(
        ["Express", "next working day", "9.90 €"]
    )
    assert "|" not in article.inner_text()
    assert_accessible(page)
