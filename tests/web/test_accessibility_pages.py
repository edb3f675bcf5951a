"""axe-core over every page of the hub, in English and Simplified Chinese: the landing page,
the demo shop with the chat widget open, the inbox signed in, the knowledge-base editor signed
in as the demo editor, the help center (list, a search with and without results, an article,
the 404 page). Zero violations each (tests.web.accessibility: WCAG 2.1 A/AA and axe's best
practices), against one `omnihub serve` with the demo tenant and its FAQ."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import start_live_hub
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, HubProcess
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible
from tests.web.test_widget_bot import _demo_faq_ready

Page = shared.Page
expect = shared.expect

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

EDITOR_EMAIL = "editor@demo.omnihub.test"  # the demo editor; same password as the demo agent
LOCALES = ["en-US", "zh-CN"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    proc = start_live_hub(tmp_path_factory.mktemp("a11y-hub"))
    try:
        deadline = time.monotonic() + 60
        while not _demo_faq_ready(proc.url):  # the demo FAQ is seeded after start-up
            assert time.monotonic() < deadline, "the demo FAQ was not published within 60 s"
            time.sleep(0.3)
        yield proc
    finally:
        proc.stop()


def signed_in(page: Page, hub: HubProcess, email: str) -> None:
    """Signs the page's browser context in through the API, as the login form would."""
    resp = page.request.post(
        hub.url + "/api/auth/login", data={"email": email, "password": AGENT_PASSWORD}
    )
    assert resp.ok, resp.text()


def settled(page: Page) -> None:
    """Waits for the page's own scripts to have drawn it (their requests done)."""
    page.wait_for_load_state("networkidle")


def check_landing(page: Page, hub: HubProcess) -> None:
    page.goto(hub.url + "/")
    for path in ("/inbox", "/kb", "/help", "/demo"):
        expect(page.locator(f'main a[href="{path}"]')).to_be_visible()


def check_demo_with_widget(page: Page, hub: HubProcess) -> None:
    page.goto(hub.url + "/demo")
    shared.open_widget(page)
    settled(page)


def check_inbox(page: Page, hub: HubProcess) -> None:
    signed_in(page, hub, AGENT_EMAIL)
    page.goto(hub.url + "/inbox")
    expect(page.get_by_test_id("agent-name")).not_to_be_empty()
    settled(page)


def check_kb(page: Page, hub: HubProcess) -> None:
    signed_in(page, hub, EDITOR_EMAIL)
    page.goto(hub.url + "/kb")
    expect(page.get_by_test_id("new-article")).to_be_visible()
    expect(page.get_by_test_id("article-row").first).to_be_visible()
    page.get_by_test_id("article-row").first.click()  # the editor with an article open
    expect(page.get_by_test_id("editor-status")).to_be_visible()
    settled(page)


def help_list(query: str, shown: str) -> Callable[[Page, HubProcess], None]:
    """The help center's list for `query` ("" for all), drawn once `shown` has a link."""

    def check(page: Page, hub: HubProcess) -> None:
        page.goto(hub.url + "/help" + (f"?q={query}" if query else ""))
        expect(page.get_by_test_id(shown).locator("a").first).to_be_visible()
        settled(page)

    return check


def check_help_article(page: Page, hub: HubProcess) -> None:
    page.goto(hub.url + "/help/articles/en-shipping-times")  # with a table
    expect(page.get_by_test_id("help-article").locator("h1")).not_to_be_empty()
    settled(page)


def check_help_404(page: Page, hub: HubProcess) -> None:
    response = page.goto(hub.url + "/help/articles/no-such-article")
    assert response is not None and response.status == 404
    expect(page.get_by_test_id("help-not-found")).to_be_visible()
    settled(page)


PAGES: dict[str, Callable[[Page, HubProcess], None]] = {
    "landing": check_landing,
    "demo-widget": check_demo_with_widget,
    "inbox": check_inbox,
    "kb": check_kb,
    "help": help_list("", "help-articles"),
    "help-results": help_list("refund", "help-articles"),
    "help-no-results": help_list("xyzzy plugh", "help-popular"),
    "help-article": check_help_article,
    "help-404": check_help_404,
}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("name", list(PAGES))
def test_page_has_no_axe_violations(
    name: str, locale: str, hub: HubProcess, open_page: Callable[..., Page]
) -> None:
    page = open_page(locale=locale)
    PAGES[name](page, hub)
    assert_accessible(page)
