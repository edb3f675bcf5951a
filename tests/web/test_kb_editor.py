"""The knowledge-base editor (/kb) in headless Chromium against a real running hub.

One demo hub (`omnihub serve`, SQLite, with the seeded FAQ) serves the whole module; its
accounts are made the way an operator makes them, `omnihub agents add` pointed at the hub's
data directory. Reuses the browser fixtures of test_browser.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from tests.support import ROOT, HubProcess
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible

Page = shared.Page
expect = shared.expect

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

EDITOR = "eda@kb.test"
READER = "ann@kb.test"  # a plain agent
PASSWORD = "kb-editor-pass"


def add_agent(hub: HubProcess, email: str, role: str) -> None:
    """`omnihub agents add` against the running hub's SQLite database."""
    result = subprocess.run(
        [sys.executable, "-m", "hub", "agents", "add", "--email", email,
         "--name", f"{role.title()} {email.split('@')[0]}", "--role", role,
         "--password", PASSWORD],
        cwd=ROOT, env={**os.environ, **hub.env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def kb_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A demo hub shared by this module's tests (start-up indexes the seeded FAQ)."""
    data = tmp_path_factory.mktemp("kb-hub")
    hub = HubProcess(
        env={
            "OMNIHUB_DATA_DIR": str(data / "live"),
            "OMNIHUB_DEMO": "1",
            "OMNIHUB_LOG_LEVEL": "warning",
        }
    )
    hub.log_path = data / "hub.log"
    hub.start()
    try:
        add_agent(hub, EDITOR, "editor")
        add_agent(hub, READER, "agent")
        yield hub
    finally:
        hub.stop()


def sign_in(page: Page, hub: HubProcess, email: str) -> None:
    page.goto(hub.url + "/kb")
    page.get_by_test_id("login-email").fill(email)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()


def editor_page(hub: HubProcess, open_page: Callable[..., Page]) -> Page:
    page = open_page()
    sign_in(page, hub, EDITOR)
    expect(page.get_by_test_id("new-article")).to_be_visible()
    return page


def write_article(
    page: Page,
    title: str,
    body: str,
    questions: Sequence[str] = (),
    short: str = "",
    tags: str = "",
) -> None:
    page.get_by_test_id("new-article").click()
    expect(page.get_by_test_id("f-title")).to_be_focused()
    page.get_by_test_id("f-title").fill(title)
    page.get_by_test_id("f-body").fill(body)
    for i, question in enumerate(questions):
        if i == 0:
            page.get_by_test_id("add-question").click()
        else:
            page.get_by_test_id("question-input").nth(i - 1).press("Enter")  # Enter adds a row
        expect(page.get_by_test_id("question-input").nth(i)).to_be_focused()
        page.keyboard.type(question)
    if short:
        page.get_by_test_id("f-short").fill(short)
    if tags:
        page.get_by_test_id("f-tags").fill(tags)


def notice(page: Page):
    return page.get_by_test_id("notice")


def ask_console(page: Page, question: str) -> dict[str, Any]:
    """Asks in the console; returns the search API's answer that the page is showing."""
    page.get_by_test_id("tab-console").click()
    page.get_by_test_id("console-q").fill(question)
    with page.expect_response(lambda r: "/api/kb/search?" in r.url) as response:
        page.get_by_test_id("console-q").press("Enter")
    result: dict[str, Any] = response.value.json()
    return result


def test_editor_writes_publishes_and_bot_answers(kb_hub, open_page) -> None:
    page = editor_page(kb_hub, open_page)
    # A topic the demo FAQ does not cover, so no seeded article competes for the answer.
    title = "Gift wrapping"
    questions = ["Can you wrap my order as a present?", "Do you offer gift wrap?"]
    write_article(
        page,
        title,
        "Tick **gift wrap** at checkout and we wrap the parcel in recycled paper with a card.",
        questions,
        short="Choose gift wrap at checkout; it costs 3 EUR.",
        tags="orders, gifts",
    )
    expect(page.get_by_test_id("short-count")).to_have_text("45 of 300 characters")
    expect(page.get_by_test_id("f-short")).to_have_attribute(
        "aria-describedby", "f-short-count f-short-hint"
    )
    page.get_by_test_id("save-btn").click()
    expect(notice(page)).to_have_text(f"Created the draft “{title}” (version 1).")
    expect(notice(page)).to_have_attribute("aria-live", "polite")
    expect(page.get_by_test_id("editor-status")).to_have_text("Draft")
    # The preview is the server's rendering of the saved Markdown.
    expect(page.get_by_test_id("preview").locator("strong")).to_have_text("gift wrap")
    row = page.get_by_test_id("article-row").filter(has_text=title)
    expect(row).to_contain_text("Draft")
    article_id = row.get_attribute("data-article-id")

    # Draft offers review and publish; publishing moves it on to archive/draft.
    workflow = page.get_by_test_id("workflow").locator("button")
    expect(workflow).to_have_text(["Submit for review", "Publish"])
    page.get_by_test_id("status-to-published").click()
    expect(notice(page)).to_have_text(f"“{title}” is now Published.")
    expect(page.get_by_test_id("editor-status")).to_have_text("Published")
    expect(workflow).to_have_text(["Archive", "Back to draft"])
    expect(row).to_contain_text("Published")
    expect(page.get_by_test_id("question-input")).to_have_count(2)

    # The bot finds it for a paraphrase and would answer with it.
    decision = page.get_by_test_id("console-decision")
    ask_console(page, "do you do gift wrapping")
    expect(decision).to_have_text(f"The bot would answer with “{title}”.")
    expect(decision).to_have_attribute("data-decision", "answer")
    hit = page.locator(f'[data-testid="console-hit"][data-article-id="{article_id}"]')
    expect(hit).to_have_attribute("data-answer", "true")
    expect(hit).to_contain_text("score")
    expect(hit.get_by_test_id("console-highlight").locator("mark").first).to_be_visible()
    # What the customer would get on web chat: the short answer and a link (Markdown) ...
    reply = page.get_by_test_id("console-reply-message")
    expect(reply).to_have_count(1)
    expect(reply).to_contain_text("Choose gift wrap at checkout; it costs 3 EUR.")
    link = reply.get_by_role("link", name="Read it in full")
    expect(link).to_have_attribute("href", re.compile(r"/help/articles/"))
    expect(reply).not_to_contain_text("](")  # rendered, not Markdown source
    expect(reply).not_to_contain_text("recycled paper")
    # ... and by e-mail the whole article.
    page.get_by_test_id("console-channel").select_option("email")
    ask_console(page, "do you do gift wrapping")
    expect(reply).to_contain_text("Tick gift wrap at checkout")
    expect(reply.locator("strong")).to_have_text("gift wrap")
    assert_accessible(page, "#panel-console")  # the channel picker, the reply
    page.get_by_test_id("console-channel").select_option("webchat")
    # Misspelt: whether the engine copes or suggests a spelling, the page says what it said.
    result = ask_console(page, "giftt wraping")
    suggestion = page.get_by_test_id("console-suggestion")
    if result["decision"] == "answer":
        expect(decision).to_have_text(f"The bot would answer with “{title}”.")
    else:
        expect(decision).to_contain_text("hand the customer over to an agent")
    if result["suggestion"]:
        expect(suggestion).to_contain_text(f"Did you mean “{result['suggestion']}”?")
        page.get_by_test_id("console-suggestion-btn").click()
        expect(page.get_by_test_id("console-q")).to_have_value(result["suggestion"])
    else:
        expect(suggestion).to_be_hidden()
    page.screenshot(path="/tmp/omnihub-kb-console.png", full_page=True)

    # Tabs follow the WAI-ARIA pattern; the page speaks Chinese on request.
    page.get_by_test_id("tab-console").press("ArrowRight")
    expect(page.get_by_test_id("tab-gaps")).to_be_focused()
    expect(page.get_by_test_id("tab-gaps")).to_have_attribute("aria-selected", "true")
    page.get_by_role("button", name="中文").click()
    expect(page.get_by_test_id("tab-console")).to_have_text("测试机器人")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    # A plain agent reads the same article without any way to change it.
    reader = open_page()
    sign_in(reader, kb_hub, READER)
    expect(reader.get_by_test_id("readonly-banner")).to_be_visible()
    expect(reader.get_by_test_id("new-article")).to_be_hidden()
    reader.get_by_test_id("article-row").filter(has_text=title).click()
    expect(reader.get_by_test_id("f-title")).to_have_value(title)
    expect(reader.get_by_test_id("f-title")).to_have_attribute("readonly", "")
    expect(reader.get_by_test_id("f-body")).to_have_attribute("readonly", "")
    expect(reader.get_by_test_id("f-language")).to_be_disabled()
    expect(reader.get_by_test_id("save-btn")).to_be_hidden()
    expect(reader.get_by_test_id("add-question")).to_be_hidden()
    expect(reader.get_by_test_id("question-remove")).to_have_count(0)
    expect(reader.get_by_test_id("workflow").locator("button")).to_have_count(0)
    expect(reader.get_by_test_id("version-restore-btn")).to_have_count(0)
    reader.get_by_test_id("tab-synonyms").click()
    expect(reader.get_by_test_id("synonyms-save")).to_be_hidden()
    reader.get_by_test_id("tab-console").click()
    reader.get_by_test_id("console-q").fill("do you do gift wrapping")
    reader.get_by_test_id("console-ask").click()
    expect(reader.get_by_test_id("console-decision")).to_have_attribute("data-decision", "answer")

    # Back to the editor: an edit makes a new version; the history shows and restores v1.
    page.get_by_role("button", name="EN").click()
    page.get_by_test_id("tab-articles").click()
    page.get_by_test_id("f-title").fill(title + " (old policy)")
    expect(page.locator("#dirty-note")).to_be_visible()
    page.get_by_test_id("f-title").press("Control+s")
    expect(notice(page)).to_contain_text(f"Saved “{title} (old policy)”")
    versions = page.get_by_test_id("version-row")
    expect(versions.first).to_contain_text("current")
    first = page.locator('[data-testid="version-row"][data-version="1"]')
    first.get_by_test_id("version-view-btn").click()
    expect(page.get_by_test_id("version-view")).to_be_visible()
    expect(page.get_by_test_id("version-view")).to_contain_text(title)
    expect(page.get_by_test_id("version-view")).to_be_focused()
    first.get_by_test_id("version-restore-btn").click()
    expect(notice(page)).to_contain_text("Restored version 1")
    expect(page.get_by_test_id("f-title")).to_have_value(title)


def test_markup_in_articles_never_runs(kb_hub, open_page) -> None:
    page = editor_page(kb_hub, open_page)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    evil = "<img src=x onerror=alert(1)><script>window.__pwned = 1; alert(2)</script>"
    title = "Parcel lockers <b onmouseover=alert(3)>pickup</b>"
    write_article(
        page,
        title,
        f"Collect parcels at the **locker** with your code.\n\n{evil}\n\nPickup takes a minute.",
        [f"where is my parcel locker {evil}"],
        short=f"Use the code we sent. {evil}",
    )
    page.get_by_test_id("save-btn").click()
    expect(notice(page)).to_contain_text("Created the draft")
    preview = page.get_by_test_id("preview")
    expect(preview.locator("strong")).to_have_text("locker")
    expect(preview).to_contain_text("Pickup takes a minute.")
    expect(preview.locator("script, [onerror], [onmouseover]")).to_have_count(0)
    # Titles are text, shown literally.
    expect(page.get_by_test_id("editor-heading")).to_have_text(title)
    expect(page.get_by_test_id("article-row").filter(has_text=title)).to_have_count(1)
    expect(page.locator("#article-list b")).to_have_count(0)

    page.get_by_test_id("status-to-published").click()
    expect(page.get_by_test_id("editor-status")).to_have_text("Published")
    page.get_by_test_id("version-view-btn").first.click()
    expect(page.get_by_test_id("version-view")).to_contain_text("where is my parcel locker <img")

    article_id = (
        page.get_by_test_id("article-row").filter(has_text=title).get_attribute("data-article-id")
    )
    ask_console(page, "where is my parcel locker")
    hit = page.locator(f'[data-testid="console-hit"][data-article-id="{article_id}"]')
    expect(hit).to_be_visible()
    highlight = hit.get_by_test_id("console-highlight")
    expect(highlight.locator("mark").first).to_be_visible()
    expect(highlight.locator(":scope > :not(mark), mark > *")).to_have_count(0)
    expect(hit.locator(".hit-short")).to_contain_text("<script>window.__pwned")
    expect(page.locator("main script, main [onerror], main [onmouseover]")).to_have_count(0)
    page.wait_for_timeout(300)  # give a stray onerror handler the chance to fire
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []


def test_content_gap_creates_prefilled_draft(kb_hub, open_page) -> None:
    page = editor_page(kb_hub, open_page)
    for question in ("do you sell saddles for unicorns", "can I buy a unicorn saddle"):
        ask_console(page, question)
        expect(page.get_by_test_id("console-decision")).to_have_attribute(
            "data-decision", "escalate"
        )
        expect(page.get_by_test_id("console-decision")).to_contain_text("hand the customer over")

    page.get_by_test_id("tab-gaps").click()
    group = page.get_by_test_id("gap-group").filter(has_text="unicorn").first
    expect(group).to_be_visible()
    example = group.locator("h3").inner_text()
    asked = group.locator("ul li").all_inner_texts()
    assert example and asked
    group.get_by_test_id("gap-create").click()

    expect(page.get_by_test_id("tab-articles")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_test_id("f-title")).to_have_value(example)
    expect(page.get_by_test_id("f-title")).to_be_focused()
    values = [q.input_value() for q in page.get_by_test_id("question-input").all()]
    assert values == list(dict.fromkeys(q.strip() for q in asked))
    expect(page.get_by_test_id("editor-status")).to_be_hidden()  # not saved yet
    expect(page.locator("#dirty-note")).to_be_visible()

    page.get_by_test_id("f-body").fill("We do not sell unicorn saddles.")
    page.get_by_test_id("save-btn").click()
    expect(notice(page)).to_contain_text("Created the draft")
    expect(page.get_by_test_id("question-input")).to_have_count(len(values))


def test_synonyms_round_trip(kb_hub, open_page) -> None:
    page = editor_page(kb_hub, open_page)
    page.get_by_test_id("tab-synonyms").click()
    box = page.get_by_test_id("synonyms")
    box.fill("refund, reimbursement\nlonely")
    page.get_by_test_id("synonyms-save").click()
    expect(notice(page)).to_have_text("Line 2 needs at least two words or phrases.")
    box.fill("refund, reimbursement\n\nparcel， package")
    page.get_by_test_id("synonyms-save").click()
    expect(notice(page)).to_have_text("Saved 2 synonym groups.")
    page.reload()
    expect(page.get_by_test_id("tab-synonyms")).to_have_attribute("aria-selected", "true")
    expect(box).to_have_value("refund, reimbursement\nparcel, package")


def test_concurrent_save_offers_reload(kb_hub, open_page) -> None:
    first = editor_page(kb_hub, open_page)
    write_article(first, "Store opening hours on holidays", "We open at 10:00 on public holidays.")
    first.get_by_test_id("save-btn").click()
    expect(notice(first)).to_contain_text("Created the draft")

    second = editor_page(kb_hub, open_page)
    second.get_by_test_id("article-row").filter(has_text="Store opening hours").click()
    expect(second.get_by_test_id("f-body")).to_have_value("We open at 10:00 on public holidays.")

    first.get_by_test_id("f-body").fill("We open at 11:00 on public holidays.")
    first.get_by_test_id("save-btn").click()
    expect(notice(first)).to_contain_text("version 2")

    second.get_by_test_id("f-body").fill("Closed on public holidays.")
    second.get_by_test_id("save-btn").click()
    expect(notice(second)).to_contain_text("Someone else saved this article")
    expect(second.get_by_test_id("f-body")).to_have_value("Closed on public holidays.")  # kept
    second.get_by_test_id("reload-btn").click()
    expect(second.get_by_test_id("f-body")).to_have_value("We open at 11:00 on public holidays.")
    expect(second.get_by_test_id("editor-version")).to_have_text("Version 2")
    expect(notice(second)).to_have_text("Reloaded the latest version.")


def test_preview_shows_the_demo_faqs_table(kb_hub, open_page) -> None:
    """Issue 18: the delivery table ran into one paragraph of pipes in the preview."""
    page = editor_page(kb_hub, open_page)
    page.locator('[data-testid="article-row"][data-article-id="en-shipping-times"]').click()
    expect(page.get_by_test_id("f-title")).to_have_value("Shipping times and costs")
    table = page.get_by_test_id("preview").locator("table")
    expect(table.get_by_role("columnheader")).to_have_text(["Delivery", "Cost"])
    expect(table.locator("tbody tr").first.locator("td")).to_have_text(
        ["Standard", "3–5 working days", "free over 50 €"]
    )
    assert "|" not in page.get_by_test_id("preview").inner_text()
    assert_accessible(page, '[data-testid="preview"]')


def test_long_titles_saves_in_view_archiving_asks_and_plurals(kb_hub, open_page) -> None:
    page = editor_page(kb_hub, open_page)
    page.set_viewport_size({"width": 390, "height": 780})  # a phone: the form is long
    title = "Can a Portable Hole be folded twice, returned after use, or sent abroad by sea?"
    write_article(page, title, "Please do not fold it twice.\n\n" + "More detail.\n\n" * 30)
    page.get_by_test_id("save-btn").scroll_into_view_if_needed()
    page.get_by_test_id("save-btn").click()
    # The result of Save is where the editor is looking, and announced (role=status).
    expect(notice(page)).to_have_text(f"Created the draft “{title}” (version 1).")
    expect(notice(page)).to_be_in_viewport()
    expect(notice(page)).to_have_attribute("role", "status")
    page.get_by_test_id("status-to-published").click()
    expect(page.get_by_test_id("editor-status")).to_have_text("Published")

    # The list's "Published" badge stays a one-line pill beside a title that wraps.
    row = page.get_by_test_id("article-row").filter(has_text=title)
    # Publishing redraws the list: measure the row once it shows the new status.
    expect(row.locator(".badge")).to_have_text("Published")
    expect(row.locator(".row-title")).to_be_visible()
    title_box = row.locator(".row-title").bounding_box()
    badge_box = row.locator(".badge").bounding_box()
    assert title_box and badge_box
    assert title_box["height"] > 2 * badge_box["height"], "the title wraps"
    assert badge_box["height"] < 30 and badge_box["width"] < 3 * badge_box["height"] + 60

    # Archiving asks first, in a modal dialog; Escape (or Cancel) keeps the article.
    archive = page.get_by_test_id("status-to-archived")
    archive.click()
    dialog = page.get_by_role("dialog", name=f"Archive “{title}”?")
    expect(dialog).to_be_visible()
    expect(page.get_by_test_id("archive-cancel")).to_be_focused()
    assert_accessible(page)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(archive).to_be_focused()
    expect(page.get_by_test_id("editor-status")).to_have_text("Published")
    archive.click()
    page.get_by_test_id("archive-confirm").click()
    expect(page.get_by_test_id("editor-status")).to_have_text("Archived")
    expect(notice(page)).to_have_text(f"“{title}” is now Archived.")

    # A question asked once reads "once", not "1 times"; in Chinese "1 次".
    ask_console(page, "do you rent out hot air balloons for weddings")
    page.get_by_test_id("tab-gaps").click()
    group = page.get_by_test_id("gap-group").filter(has_text="hot air balloons")
    expect(group).to_contain_text("Asked once · last")
    page.get_by_role("button", name="中文").click()
    expect(group).to_contain_text("被问 1 次")
    assert_accessible(page)
