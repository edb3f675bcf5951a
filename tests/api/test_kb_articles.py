"""The knowledge base over HTTP: editorial workflow, versions, permissions, search, the public
help center, feedback, the content-gap report and synonyms, on SQLite and PostgreSQL, with the
real search index."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.api import create_app
from hub.api.keys import AGENTS, ARTICLES
from hub.config import Settings
from hub.model import Role
from tests.support import REDIS_URL, Agent, next_frame
from tests.system.test_two_nodes import require_redis

PASSWORD = "kb-tests-password"


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    """No demo tenant (its FAQ would be seeded underneath the tests); BM25 only, for speed."""
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        demo=False,
        kb_semantic=False,
        log_level="warning",
    )


class Staff:
    """Staff of each role, created and signed in on first use (password hashing is slow)."""

    def __init__(self, hub: TestClient[Any, Any], base_url: str):
        self.hub, self.base_url = hub, base_url
        self.signed_in: dict[str, Agent] = {}

    async def __call__(self, role: str) -> Agent:
        if role not in self.signed_in:
            email = f"{role}@kb.test"
            await self.hub.server.app[AGENTS].add(email, role.title(), Role(role), PASSWORD)
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            self.signed_in[role] = await Agent(http, self.base_url).login(email, PASSWORD)
        return self.signed_in[role]

    async def close(self) -> None:
        for agent in self.signed_in.values():
            await agent.http.close()


@pytest.fixture
async def staff(hub: TestClient[Any, Any], base_url: str) -> AsyncIterator[Staff]:
    team = Staff(hub, base_url)
    yield team
    await team.close()


async def put(agent: Agent, path: str, body: Any) -> tuple[int, Any]:
    async with agent.http.put(
        agent.base + path, json=body, headers={"X-CSRF-Token": agent.csrf}
    ) as resp:
        return resp.status, await resp.json()


def article(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "How do I return a kayak?",
        "body": "Bring the kayak to any store within **30 days**.",
        "questions": ["Can I send back my kayak?", "kayak return policy"],
        "short_answer": "Return kayaks to any store within 30 days.",
        "language": "en",
        "tags": ["Returns", "kayaks"],
    }
    return {**body, **over}


async def create(editor: Agent, **over: Any) -> dict[str, Any]:
    status, body = await editor.post("/api/kb/articles", article(**over))
    assert status == 201, body
    return dict(body)


async def publish(editor: Agent, article_id: str) -> dict[str, Any]:
    status, body = await editor.post(
        f"/api/kb/articles/{article_id}/status", {"status": "published"}
    )
    assert status == 200, body
    return dict(body)


async def hit_ids(agent: Agent, q: str, **params: str) -> list[str]:
    status, body = await agent.get("/api/kb/search", q=q, **params)
    assert status == 200, body
    return [h["article_id"] for h in body["hits"]]


# --- workflow, versions, concurrency ------------------------------------------------------------


async def test_workflow_versions_restore_and_concurrency(staff: Staff) -> None:
    editor = await staff("editor")
    events = await editor.events()
    created = await create(editor, id="kayak-returns")
    assert (created["id"], created["status"], created["version"]) == ("kayak-returns", "draft", 1)
    assert created["tags"] == ["returns", "kayaks"]  # normalised
    assert created["updated_by"] == {"id": editor.id, "name": "Editor"}
    assert "<strong>30 days</strong>" in created["body_html"]
    frame = await next_frame(events, lambda f: f.get("kind") == "article.created")
    assert frame["data"]["article"]["id"] == "kayak-returns"
    await events.close()

    status, edited = await put(
        editor, "/api/kb/articles/kayak-returns", {**article(body="Within 60 days."), "version": 1}
    )
    assert status == 200 and edited["version"] == 2, edited
    # Someone still holding version 1 must not overwrite version 2.
    status, conflict = await put(
        editor, "/api/kb/articles/kayak-returns", {**article(title="Stale"), "version": 1}
    )
    assert status == 409 and conflict["error"]["code"] == "version_conflict"
    # Saving unchanged content makes no version.
    status, same = await put(
        editor, "/api/kb/articles/kayak-returns", {**article(body="Within 60 days."), "version": 2}
    )
    assert status == 200 and same["version"] == 2

    assert (await publish(editor, "kayak-returns"))["version"] == 3
    status, bad = await editor.post(
        "/api/kb/articles/kayak-returns/status", {"status": "in_review"}
    )
    assert status == 409 and bad["error"]["code"] == "invalid_transition"

    status, versions = await editor.get("/api/kb/articles/kayak-returns/versions")
    assert status == 200
    listed = [(v["version"], v["status"], v["changes"]) for v in versions["versions"]]
    assert listed[0] == (3, "published", ["status"])
    assert listed[1] == (2, "draft", ["body"])
    assert listed[2][0] == 1 and "title" in listed[2][2]
    assert versions["versions"][0]["author"] == {"id": editor.id, "name": "Editor"}

    status, first = await editor.get("/api/kb/articles/kayak-returns/versions/1")
    assert status == 200 and first["version"] == 1 and "30 days" in first["body"]
    status, restored = await editor.post("/api/kb/articles/kayak-returns/versions/1/restore")
    assert status == 200, restored
    assert (restored["version"], restored["status"]) == (4, "published")
    assert "30 days" in restored["body"]
    status, versions = await editor.get("/api/kb/articles/kayak-returns/versions")
    assert [v["version"] for v in versions["versions"]] == [4, 3, 2, 1]
    assert versions["versions"][0]["changes"] == ["body"]


async def test_generated_ids_and_duplicates(staff: Staff) -> None:
    editor = await staff("admin")
    made = await create(editor)
    assert made["id"].startswith("how-do-i-return-a-kayak-")
    chinese = await create(editor, title="如何退货？", language="zh-CN")
    assert chinese["id"].startswith("article-") and chinese["language"] == "zh"
    await create(editor, id="fixed-id")
    status, body = await editor.post("/api/kb/articles", article(id="fixed-id"))
    assert status == 409 and body["error"]["code"] == "duplicate_id"


# --- permissions --------------------------------------------------------------------------------


async def test_permissions_per_role(staff: Staff, http: aiohttp.ClientSession) -> None:
    base = (await staff("editor")).base
    await create(await staff("editor"), id="perm")
    for role in ("agent", "supervisor"):
        reader = await staff(role)
        assert (await reader.get("/api/kb/articles"))[0] == 200
        assert (await reader.get("/api/kb/articles/perm"))[0] == 200
        assert (await reader.get("/api/kb/articles/perm/versions"))[0] == 200
        assert (await reader.get("/api/kb/search", q="kayak"))[0] == 200
        assert (await reader.get("/api/kb/gaps"))[0] == 200
        assert (await reader.get("/api/kb/synonyms"))[0] == 200
        for status, body in [
            await reader.post("/api/kb/articles", article()),
            await reader.post("/api/kb/articles/perm/status", {"status": "published"}),
            await reader.post("/api/kb/articles/perm/versions/1/restore"),
            await put(reader, "/api/kb/articles/perm", {**article(), "version": 1}),
            await put(reader, "/api/kb/synonyms", {"groups": [["a", "b"]]}),
        ]:
            assert status == 403 and body["error"]["code"] == "forbidden", (role, body)
    for role in ("editor", "admin"):
        await create(await staff(role))
    # Nobody signed in: 401; signed in without the CSRF header: 403 csrf_failed.
    for method, path in [
        ("GET", "/api/kb/articles"),
        ("POST", "/api/kb/articles"),
        ("GET", "/api/kb/search?q=x"),
        ("PUT", "/api/kb/synonyms"),
    ]:
        async with http.request(method, base + path, json={}) as resp:
            assert resp.status == 401, path
    editor = await staff("editor")
    async with editor.http.post(base + "/api/kb/articles", json=article()) as resp:
        assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf_failed"
    _, listed = await (await staff("agent")).get("/api/kb/articles")
    assert len(listed["articles"]) == 3


# --- search and the index -----------------------------------------------------------------------


async def test_search_finds_a_published_article_until_it_is_archived(staff: Staff) -> None:
    editor = agent = await staff("editor")  # any signed-in role searches alike
    word = "zorbtastic"
    await create(editor, id="zorb", title=f"The {word} paddle", body=f"All about the {word}.")
    assert await hit_ids(agent, word) == []  # a draft is not searchable
    await publish(editor, "zorb")
    assert await hit_ids(agent, word) == ["zorb"]
    status, result = await agent.get("/api/kb/search", q=f"{word} paddle", lang="en", limit="3")
    assert status == 200
    assert set(result) == {"query", "hits", "answer", "decision", "suggestion", "reply"}
    assert result["decision"] in ("answer", "escalate")
    assert result["hits"][0]["short_answer"] == "Return kayaks to any store within 30 days."
    assert await hit_ids(agent, word, lang="zh") == []

    # Editing a published article updates the index at once.
    status, current = await editor.get("/api/kb/articles/zorb")
    status, _ = await put(
        editor,
        "/api/kb/articles/zorb",
        {
            **article(title="The quixotic paddle", body="All about it."),
            "version": current["version"],
        },
    )
    assert status == 200
    assert await hit_ids(agent, "quixotic") == ["zorb"]
    assert await hit_ids(agent, word) == []

    status, _ = await editor.post("/api/kb/articles/zorb/status", {"status": "archived"})
    assert status == 200
    assert await hit_ids(agent, "quixotic") == []


async def test_index_kept_incrementally_equals_a_rebuild(
    staff: Staff, hub: TestClient[Any, Any]
) -> None:
    editor = agent = await staff("editor")  # any signed-in role searches alike
    topics = ["kayak", "canoe", "paddle", "lifejacket", "helmet"]
    for n, topic in enumerate(topics):
        await create(
            editor,
            id=f"t{n}",
            title=f"Caring for your {topic}",
            body=f"Rinse the {topic} in fresh water after every trip.",
            questions=[f"How do I clean my {topic}?"],
        )
        await publish(editor, f"t{n}")
    _, t1 = await editor.get("/api/kb/articles/t1")
    await put(
        editor,
        "/api/kb/articles/t1",
        {
            **article(
                title="Storing your canoe",
                body="Keep the canoe out of the sun.",
                questions=["Where should I keep my canoe?"],
            ),
            "version": t1["version"],
        },
    )
    await editor.post("/api/kb/articles/t3/status", {"status": "archived"})
    await editor.post("/api/kb/articles/t4/status", {"status": "draft"})

    queries = ["clean my kayak", "canoe sun", "fresh water", "lifejacket", "helmet", "paddle"]

    async def results() -> list[list[tuple[str, float]]]:
        found = []
        for q in queries:
            status, body = await agent.get("/api/kb/search", q=q)
            assert status == 200, body
            found.append([(h["article_id"], round(h["score"], 6)) for h in body["hits"]])
        return found

    incremental = await results()
    assert await hub.server.app[ARTICLES].keeper.rebuild() == 3
    assert await results() == incremental
    assert {i for hits in incremental for i, _ in hits} <= {"t0", "t1", "t2"}


# --- the public help center ---------------------------------------------------------------------


async def test_help_center_shows_published_articles_as_safe_html(
    staff: Staff, http: aiohttp.ClientSession
) -> None:
    editor = await staff("editor")
    base = editor.base
    nasty = (
        "Hello <script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "[click](javascript:alert(1)) and [ACME](https://acme.example)\n\n"
        '<a href="https://evil.example" onclick="steal()">x</a> <style>p{}</style>'
    )
    await create(editor, id="public", body=nasty)
    await create(editor, id="secret", title="Internal draft notes")
    await publish(editor, "public")

    async with http.get(
        base + "/api/help/articles", headers={"Origin": "https://shop.example"}
    ) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] in ("*", "https://shop.example")
        listed = await r.json()
    assert [a["id"] for a in listed["articles"]] == ["public"]
    assert set(listed["articles"][0]) == {"id", "title", "language", "tags", "short_answer"}

    async with http.get(base + "/api/help/articles/public") as r:
        assert r.status == 200
        page = await r.json()
    html = page["body_html"]
    # Raw HTML is dropped and a javascript: link stays inert text; nothing can run.
    for bad in ("<script", "onerror", "onclick", "steal(", "<style", 'href="javascript'):
        assert bad not in html, (bad, html)
    assert 'href="https://acme.example"' in html and 'rel="noopener noreferrer nofollow"' in html
    _, staff_view = await editor.get("/api/kb/articles/public")
    assert staff_view["body_html"] == html

    async with http.get(base + "/api/help/articles/secret") as r:
        assert r.status == 404 and (await r.json())["error"]["code"] == "unknown_article"
    async with http.get(base + "/api/help/articles", params={"q": "kayak"}) as r:
        assert [a["id"] for a in (await r.json())["articles"]] == ["public"]

    for helpful in (True, True, False):
        async with http.post(
            base + "/api/help/articles/public/feedback", json={"helpful": helpful}
        ) as r:
            assert r.status == 204
    _, counted = await editor.get("/api/kb/articles/public")
    assert (counted["helpful"], counted["not_helpful"]) == (2, 1)
    _, listed = await editor.get("/api/kb/articles", status="published")
    assert (listed["articles"][0]["helpful"], listed["articles"][0]["not_helpful"]) == (2, 1)

    async with http.post(base + "/api/help/articles/secret/feedback", json={"helpful": True}) as r:
        assert r.status == 404
    limited = 0
    for _ in range(12):
        async with http.post(
            base + "/api/help/articles/public/feedback", json={"helpful": True}
        ) as r:
            limited += r.status == 429
    assert limited > 0, "a flood of feedback from one address is limited"


async def test_the_demo_faqs_delivery_table_is_a_real_table(
    staff: Staff, http: aiohttp.ClientSession
) -> None:
    """Issue 18: the table ran into one paragraph of pipes on the help center and preview."""
    demo = Path(__file__).parents[2] / "hub" / "demo" / "faq.jsonl"
    faq = [json.loads(line) for line in demo.read_text().splitlines()]
    shipping = next(a for a in faq if a["id"] == "en-shipping-times")
    editor = await staff("editor")
    await create(editor, id="shipping", title=shipping["title"], body=shipping["body"])
    await publish(editor, "shipping")
    async with http.get(editor.base + "/api/help/articles/shipping") as r:
        assert r.status == 200
        html = (await r.json())["body_html"]
    assert "|" not in html
    assert "<th>Delivery</th>" in html and "<th>Cost</th>" in html
    assert "<tr>\n<td>Express</td>\n<td>next working day</td>\n<td>9.90 €</td>\n</tr>" in html
    _, staff_view = await editor.get("/api/kb/articles/shipping")  # what the KB preview shows
    assert staff_view["body_html"] == html


# --- gaps and synonyms --------------------------------------------------------------------------


async def test_gap_report_groups_unanswered_questions(staff: Staff) -> None:
    agent = await staff("agent")
    asked = [
        "do you sell gift cards",
        "do you sell gift cards",
        "Do you sell gift cards",
        "do you sell gift cards online",
        "student discount available",
        "student discount",
    ]
    for q in asked:
        assert (await agent.get("/api/kb/search", q=q))[0] == 200
    status, report = await agent.get("/api/kb/gaps", days="7")
    assert status == 200, report
    groups = report["groups"]
    assert sum(g["count"] for g in groups) == len(asked)
    first = groups[0]
    assert first["example"].lower() == "do you sell gift cards"
    assert first["count"] >= 3 and first["last_asked_at"]
    assert [g["count"] for g in groups] == sorted((g["count"] for g in groups), reverse=True)
    student = next(g for g in groups if "student discount" in g["questions"])
    assert "student discount available" in student["questions"]


async def test_synonyms_round_trip_and_apply_to_search(staff: Staff) -> None:
    editor = agent = await staff("editor")  # any signed-in role searches alike
    await create(
        editor,
        id="refunds",
        title="When do I get my refund?",
        body="Refunds reach your card within five days.",
        questions=[],
    )
    await publish(editor, "refunds")
    assert "refunds" not in await hit_ids(agent, "reimbursement")
    status, saved = await put(
        editor,
        "/api/kb/synonyms",
        {"groups": [[" Refund ", "reimbursement", "refund"], ["a", "b"]]},
    )
    assert status == 200 and saved == {"groups": [["refund", "reimbursement"], ["a", "b"]]}
    assert await agent.get("/api/kb/synonyms") == (200, saved)
    assert "refunds" in await hit_ids(agent, "reimbursement")
    for bad in ({"groups": [["lonely"]]}, {"groups": [["x" * 101, "y"]]}, {"groups": "x"}, {}):
        status, body = await put(editor, "/api/kb/synonyms", bad)
        assert status == 422, (bad, body)


# --- bad input ----------------------------------------------------------------------------------


BAD_ARTICLES: list[tuple[dict[str, Any], str]] = [
    ({"title": "   "}, "invalid_article"),
    ({"title": "t" * 201}, "invalid_article"),
    ({"body": "b" * 100_001}, "invalid_article"),
    ({"questions": [f"q{i}" for i in range(501)]}, "invalid_article"),
    ({"questions": ["q" * 501]}, "invalid_article"),
    ({"tags": [f"t{i}" for i in range(21)]}, "invalid_article"),
    ({"short_answer": "s" * 301}, "invalid_article"),
    ({"language": "fr"}, "unknown_language"),
    ({"id": "../etc"}, "invalid_article_id"),
    ({"id": "x" * 101}, "validation_failed"),
    ({"title": 5}, "validation_failed"),
    ({"html": "<b>"}, "validation_failed"),
    ({"questions": "not a list"}, "validation_failed"),
]


async def test_create_rejects_bad_articles(staff: Staff) -> None:
    editor = await staff("editor")
    for over, code in BAD_ARTICLES:
        status, body = await editor.post("/api/kb/articles", article(**over))
        assert 400 <= status < 500 and body["error"]["code"] == code, (over, body)
    assert (await editor.get("/api/kb/articles"))[1]["articles"] == []


async def test_every_endpoint_answers_bad_input_with_a_4xx(
    staff: Staff, http: aiohttp.ClientSession
) -> None:
    editor = await staff("editor")
    base = editor.base
    await create(editor, id="one")
    cases: list[tuple[tuple[int, Any], int, str]] = [
        (await editor.get("/api/kb/articles", status="sleeping"), 422, "validation_failed"),
        (await editor.get("/api/kb/articles", limit="0"), 422, "validation_failed"),
        (await editor.get("/api/kb/articles", language="xx"), 422, "unknown_language"),
        (await editor.get("/api/kb/articles/nope"), 404, "unknown_article"),
        (
            await put(editor, "/api/kb/articles/nope", {**article(), "version": 1}),
            404,
            "unknown_article",
        ),
        (await put(editor, "/api/kb/articles/one", article()), 422, "validation_failed"),
        (
            await editor.post("/api/kb/articles/one/status", {"status": "gone"}),
            422,
            "validation_failed",
        ),
        (
            await editor.post("/api/kb/articles/one/status", {"status": "draft"}),
            409,
            "invalid_transition",
        ),
        (
            await editor.post("/api/kb/articles/nope/status", {"status": "published"}),
            404,
            "unknown_article",
        ),
        (await editor.get("/api/kb/articles/nope/versions"), 404, "unknown_article"),
        (await editor.get("/api/kb/articles/one/versions/9"), 404, "unknown_version"),
        (await editor.get("/api/kb/articles/one/versions/abc"), 400, "invalid_request"),
        (await editor.post("/api/kb/articles/one/versions/9/restore"), 404, "unknown_version"),
        (
            await editor.post("/api/kb/articles/one/versions/1/restore", {"x": 1}),
            422,
            "validation_failed",
        ),
        (await editor.get("/api/kb/search"), 422, "validation_failed"),
        (await editor.get("/api/kb/search", q="   \t "), 422, "empty_query"),
        (await editor.get("/api/kb/search", q="\x00\x07"), 422, "empty_query"),
        (await editor.get("/api/kb/search", q="x" * 100_000), 422, "query_too_long"),
        (await editor.get("/api/kb/search", q="kayak", lang="xx"), 422, "unknown_language"),
        (await editor.get("/api/kb/search", q="kayak", limit="0"), 422, "validation_failed"),
        (await editor.get("/api/kb/gaps", days="0"), 422, "validation_failed"),
        (await editor.get("/api/kb/gaps", days="many"), 422, "validation_failed"),
    ]
    for (status, body), want_status, want_code in cases:
        assert (status, body["error"]["code"]) == (want_status, want_code), body
    status, cleaned = await editor.get("/api/kb/search", q="kay\x00ak\x1b  paddle\n")
    assert status == 200 and cleaned["query"] == "kayak paddle"
    async with editor.http.post(
        base + "/api/kb/articles",
        data=b"{not json",
        headers={"X-CSRF-Token": editor.csrf, "Content-Type": "application/json"},
    ) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "malformed_json"
    for body in ({"helpful": "yes"}, {}, {"helpful": True, "more": 1}):
        async with http.post(base + "/api/help/articles/one/feedback", json=body) as r:
            assert r.status == 422, body
    async with http.post(
        base + "/api/help/articles/one/feedback",
        data=b'{"helpful": true, "pad": "' + b"x" * 5000 + b'"}',
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status == 413
    async with http.get(base + "/api/help/articles", params={"q": " "}) as r:
        assert r.status == 422 and (await r.json())["error"]["code"] == "empty_query"
    async with http.get(base + "/api/help/articles", params={"lang": "klingon"}) as r:
        assert r.status == 422
    async with http.get(base + "/api/help/articles/" + uuid.uuid4().hex) as r:
        assert r.status == 404


# --- several hub processes ----------------------------------------------------------------------


async def test_other_hub_processes_follow_through_the_event_bus(
    aiohttp_client: Any, tmp_path: Path, database_url: str | None
) -> None:
    """Two hubs on one database and one Redis: what an editor publishes on A is found on B."""
    require_redis(REDIS_URL)
    shared = database_url or f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    nodes = []
    for name in ("a", "b"):
        node = Settings(
            data_dir=tmp_path / name,
            database_url=shared,
            redis_url=REDIS_URL,
            demo=False,
            kb_semantic=False,
            log_level="warning",
        )
        nodes.append(await aiohttp_client(create_app(node)))
    a, b = nodes
    await a.server.app[AGENTS].add("editor@kb.test", "Editor", Role.EDITOR, PASSWORD)
    async with (
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http_a,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http_b,
    ):
        on_a = await Agent(http_a, str(a.make_url("")).rstrip("/")).login(
            "editor@kb.test", PASSWORD
        )
        on_b = await Agent(http_b, str(b.make_url("")).rstrip("/")).login(
            "editor@kb.test", PASSWORD
        )
        word = "x" + uuid.uuid4().hex[:8]  # other runs may share the Redis channel
        await create(on_a, id=word, title=f"The {word} guide", body=f"All about {word}.")
        await publish(on_a, word)
        await eventually(lambda: hit_ids(on_b, word), [word])
        await on_a.post(f"/api/kb/articles/{word}/status", {"status": "archived"})
        await eventually(lambda: hit_ids(on_b, word), [])


async def eventually(probe: Any, expected: Any, timeout: float = 10) -> None:
    """Poll: the other node applies the change a moment after the commit."""
    got = None
    for _ in range(int(timeout / 0.1)):
        if (got := await probe()) == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {got!r} after {timeout} s, expected {expected!r}")
