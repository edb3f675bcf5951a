"""The public help center's API on SQLite and PostgreSQL with the demo FAQ: a question searched
in both languages, a real "no results" with suggestions, one vote per visitor and article,
404 for an article that is not there (page and API), and the shop's branding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.api.app import DEMO_FAQ
from hub.api.keys import ARTICLES
from hub.config import load_settings
from hub.errors import ConfigError
from hub.services import kb_io
from tests.api import test_kb_articles

# pytest finds fixtures among module attributes: the settings with no demo tenant, BM25 only.
settings = test_kb_articles.settings


@pytest.fixture
async def faq(hub: TestClient[Any, Any], base_url: str) -> str:
    report = await kb_io.import_articles(hub.server.app[ARTICLES], DEMO_FAQ, "jsonl", publish=True)
    assert report.ok, report.errors
    return base_url


@pytest.fixture
async def visitor() -> AsyncIterator[aiohttp.ClientSession]:
    """A reader's browser: keeps the hub's cookies (unsafe=True: cookies for 127.0.0.1)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield session


async def get_json(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as r:
        return r.status, await r.json()


async def counts(hub: TestClient[Any, Any], article_id: str) -> tuple[int, int]:
    view = await hub.server.app[ARTICLES].get(article_id)
    return view.helpful, view.not_helpful


async def test_a_question_is_searched_in_both_languages(
    faq: str, http: aiohttp.ClientSession
) -> None:
    # An English reader asking in Chinese finds the Chinese article, labelled as such.
    status, found = await get_json(http, faq + "/api/help/articles", q="退款", lang="en")
    assert status == 200
    assert found["articles"][0]["id"] == "zh-refund"
    assert found["articles"][0]["language"] == "zh"
    assert found["popular"] == []
    # And a Chinese reader asking in English the English one.
    _, found = await get_json(http, faq + "/api/help/articles", q="refund", lang="zh")
    top = found["articles"][0]
    assert (top["id"], top["title"], top["language"]) == (
        "en-refund",
        "When do I get my refund?",
        "en",
    )
    # Without a question the list stays the reader's language.
    _, listed = await get_json(http, faq + "/api/help/articles", lang="zh")
    assert {a["language"] for a in listed["articles"]} == {"zh"}


async def test_no_results_offers_popular_articles_and_a_spelling(
    faq: str, hub: TestClient[Any, Any], http: aiohttp.ClientSession
) -> None:
    for _ in range(2):
        async with http.post(
            faq + "/api/help/articles/en-return-item/feedback", json={"helpful": True}
        ) as r:
            assert r.status == 204
    status, found = await get_json(http, faq + "/api/help/articles", q="xyzzy plugh", lang="en")
    assert status == 200
    assert found["articles"] == []
    popular = [a["id"] for a in found["popular"]]
    assert popular[0] == "en-return-item"  # the most helpful first
    assert len(popular) == 5 and all(i.startswith("en-") for i in popular)

    _, found = await get_json(http, faq + "/api/help/articles", q="pasword", lang="en")
    assert found["articles"] == [] and found["suggestion"] == "password"


async def test_one_vote_per_visitor_and_article(
    faq: str, hub: TestClient[Any, Any], visitor: aiohttp.ClientSession
) -> None:
    url = faq + "/api/help/articles/en-track-order"
    before = await counts(hub, "en-track-order")
    _, article = await get_json(visitor, url)
    assert article["your_vote"] is None
    for helpful in (True, True):  # a second click, or the same vote after a reload
        async with visitor.post(url + "/feedback", json={"helpful": helpful}) as r:
            assert r.status == 204
            assert "HttpOnly" in r.headers["Set-Cookie"]
    assert await counts(hub, "en-track-order") == (before[0] + 1, before[1])
    async with visitor.post(url + "/feedback", json={"helpful": False}) as r:
        assert r.status == 204
    assert await counts(hub, "en-track-order") == (before[0], before[1] + 1)  # changed, not added
    _, article = await get_json(visitor, url)
    assert article["your_vote"] is False

    # Another article is another vote; another reader is another vote.
    async with visitor.post(faq + "/api/help/articles/en-refund/feedback", json={"helpful": True}):
        pass
    assert await counts(hub, "en-refund") == (1, 0)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as other:
        async with other.post(url + "/feedback", json={"helpful": False}) as r:
            assert r.status == 204
    assert await counts(hub, "en-track-order") == (before[0], before[1] + 2)

    # A malformed cookie is no one's vote: it gets a fresh visitor id.
    async with aiohttp.ClientSession() as forged:
        async with forged.post(
            url + "/feedback", json={"helpful": False}, headers={"Cookie": "omnihub_visitor=x"}
        ) as r:
            assert r.status == 204
            assert r.cookies["omnihub_visitor"].value != "x"
    assert await counts(hub, "en-track-order") == (before[0], before[1] + 3)


async def test_an_unknown_article_is_a_404_page_and_api(
    faq: str, http: aiohttp.ClientSession
) -> None:
    async with http.get(faq + "/help/articles/no-such-article") as r:
        assert r.status == 404
        assert r.content_type == "text/html"
        assert "help.js" in await r.text()  # the help center's own page, with a way on
    async with http.get(faq + "/help/articles/en-refund") as r:
        assert r.status == 200
    status, body = await get_json(http, faq + "/api/help/articles/no-such-article")
    assert (status, body["error"]["code"]) == (404, "unknown_article")


async def test_branding_without_demo_is_plain(faq: str, http: aiohttp.ClientSession) -> None:
    _, site = await get_json(http, faq + "/api/help/site")
    assert site == {"name": None, "color": None, "shop_url": None}


def test_branding_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_HELP_BRAND_COLOR", "red")
    with pytest.raises(ConfigError, match="help_brand_color"):
        load_settings()
    monkeypatch.setenv("OMNIHUB_HELP_BRAND_COLOR", "#aa0000")
    monkeypatch.setenv("OMNIHUB_HELP_SHOP_URL", "javascript:alert(1)")
    with pytest.raises(ConfigError, match="help_shop_url"):
        load_settings()
