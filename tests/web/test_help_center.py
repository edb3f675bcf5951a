"""The public help center (/help) in headless Chromium against `omnihub serve` with the demo
FAQ: the list, a search ranked like the bot's, an article page, a vote that reaches the
article's counts (once per visitor), and the Chinese interface with the Chinese articles; a
real "no results" with suggestions and a chat button, a search across both languages, a 404
page that helps, and the shop's branding."""

from __future__ import annotations

import http.cookiejar
import json
import re
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


def test_a_question_with_no_answer_says_so_and_offers_help(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    page.goto(bot_hub.url + "/help?q=xyzzy plugh")
    none = page.get_by_test_id("help-no-results")
    expect(none.get_by_role("heading", level=1)).to_have_text("No articles match “xyzzy plugh”")
    expect(page.get_by_test_id("help-articles")).to_be_hidden()  # not every article
    popular = page.get_by_test_id("help-popular").locator("a")
    expect(popular).to_have_count(5)
    expect(popular.first).to_have_attribute("href", re.compile(r"^/help/articles/en-"))
    assert_accessible(page)
    page.get_by_test_id("help-none-chat").click()  # the chat widget opens, ready to type
    expect(page.get_by_test_id("omnihub-panel")).to_be_visible()
    expect(page.get_by_test_id("omnihub-input")).to_be_focused()


def test_search_finds_the_other_language_and_labels_it(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    page.goto(bot_hub.url + "/help")
    page.get_by_test_id("help-search").fill("退款")
    page.get_by_test_id("help-search").press("Enter")
    first = page.get_by_test_id("help-articles").locator("li").first
    expect(first.locator("a")).to_have_text("退款什么时候到账？")
    expect(first.locator("a")).to_have_attribute("lang", "zh-CN")
    expect(first.get_by_test_id("help-result-lang")).to_have_text("中文")
    assert_accessible(page)


def test_a_visitor_votes_once_and_may_change_it(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    page.goto(bot_hub.url + "/help/articles/en-refund")
    before = _article_as_agent(bot_hub, "en-refund")
    page.get_by_test_id("help-yes").click()
    expect(page.get_by_test_id("help-yes")).to_have_attribute("aria-pressed", "true")
    page.reload()  # the vote is remembered, and a second one replaces it
    expect(page.get_by_test_id("help-yes")).to_have_attribute("aria-pressed", "true")
    page.get_by_test_id("help-yes").click()
    expect(page.get_by_test_id("help-feedback-status")).to_have_text(
        "Thank you: your vote is changed."
    )
    page.get_by_test_id("help-no").click()
    expect(page.get_by_test_id("help-no")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("help-yes")).to_have_attribute("aria-pressed", "false")
    after = _article_as_agent(bot_hub, "en-refund")
    assert (after["helpful"], after["not_helpful"]) == (
        before["helpful"],
        before["not_helpful"] + 1,
    )
    assert_accessible(page)


def test_an_unknown_article_is_a_helpful_404(bot_hub: LiveHub, open_page) -> None:
    page = open_page()
    response = page.goto(bot_hub.url + "/help/articles/no-such-article")
    assert response is not None and response.status == 404
    missing = page.get_by_test_id("help-not-found")
    expect(missing.get_by_role("heading", level=1)).to_have_text("Article not found")
    expect(missing.get_by_role("link", name="See all articles")).to_have_attribute("href", "/help")
    expect(missing.locator("ul a")).to_have_count(5)
    assert_accessible(page)


def test_the_help_center_wears_the_shops_brand(bot_hub: LiveHub, open_page) -> None:
    page = open_page(locale="zh-CN")
    page.goto(bot_hub.url + "/help")
    expect(page.get_by_test_id("help-brand")).to_have_text("ACME Store")
    shop = page.get_by_test_id("help-shop")
    expect(shop).to_have_text("返回ACME Store")
    expect(shop).to_have_attribute("href", "/demo")
    header = page.get_by_test_id("help-header")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(36, 59, 83)"
    page.get_by_test_id("help-chat").click()
    expect(page.get_by_test_id("omnihub-panel")).to_be_visible()
    expect(page.get_by_test_id("omnihub-launcher")).to_contain_text("联系我们")  # in Chinese
    assert_accessible(page)
    shop.click()
    page.wait_for_url("**/demo")
