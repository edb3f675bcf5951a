"""Learning from traffic (issue #22): suggestions from the bot's choices, helpful votes and
agent replies, decided on in the API; a gap cluster made into a draft.

The hub runs with the real bot on its web chat inbox (real sockets, SQLite; the helpful-vote
flow also on PostgreSQL), the demo FAQ imported and indexed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlmodel import col

from hub.api.kb import SUGGESTIONS
from hub.api.keys import AGENTS, ARTICLES, STORE
from hub.model import AuthorKind, Event, EventKind, Role
from hub.services.kb_suggestions import (
    Proposed,
    Source,
    linked_articles,
    normalise,
    question_before_handoff,
    question_for,
    teaches,
    usable,
)
from hub.storage.tables import EventRow
from tests.bot import conftest as bot_conftest
from tests.bot.test_webchat_bot import _twin_articles as twin_articles
from tests.support import Agent, Customer

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
Hub = TestClient[Any, Any]


# The bot tests' hub: the real bot on the web chat inbox, the demo FAQ imported and indexed
# (their `database_url` is not taken: these tests choose the backend themselves).
bot_settings, inbox_rules, settings, hub = (
    bot_conftest.bot_settings,
    bot_conftest.inbox_rules,
    bot_conftest.settings,
    bot_conftest.hub,
)
ask = bot_conftest.ask


async def listed(agent: Agent, **params: str) -> dict[str, Any]:
    code, body = await agent.get("/api/kb/suggestions", **params)
    assert code == 200, body
    return dict(body)


async def eventually(
    hub: Hub,
    agent: Agent,
    done: Callable[[dict[str, Any]], bool],
    **params: str,
) -> dict[str, Any]:
    """The suggestion list once `done` holds: the recorder works after the bus delivers the
    committed events, a moment after the customer's socket has the reply."""
    async with asyncio.timeout(15):
        while True:
            await hub.app[SUGGESTIONS].drain()
            body = await listed(agent, **params)
            if done(body):
                return body
            await asyncio.sleep(0.02)


def counted_over(n: int) -> Callable[[dict[str, Any]], bool]:
    def done(body: dict[str, Any]) -> bool:
        return sum(s["count"] for s in body["suggestions"]) > n

    return done


def questions_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s["article_id"], s["question"]) for s in body["suggestions"]]


async def article(hub: Hub, article_id: str) -> tuple[int, tuple[str, ...]]:
    view = await hub.app[ARTICLES].get(article_id)
    return view.article.version, view.article.content.questions


async def kb_events(hub: Hub) -> list[Any]:
    """The suggestion events in the log (they belong to no conversation), oldest first."""
    kinds = (EventKind.KB_SUGGESTION_ACCEPTED.value, EventKind.KB_SUGGESTION_REJECTED.value)
    with hub.app[STORE].engine.connect() as conn:
        rows = conn.execute(
            sa.select(EventRow).where(col(EventRow.kind).in_(kinds)).order_by(col(EventRow.id))
        )
        return [SimpleNamespace(kind=EventKind(r.kind), actor_id=r.actor_id, payload=r.payload)
                for r in rows]  # fmt: skip


# --- pure parts ---------------------------------------------------------------------------------


def test_normalising_folds_case_width_space_and_end_punctuation() -> None:
    assert normalise("  Where is\tmy PARCEL ?? ") == "where is my parcel"
    assert normalise("我的包裹在哪里？") == normalise("我的包裹在哪里?") == "我的包裹在哪里"
    assert normalise("Ｗｈｅｒｅ is my parcel") == "where is my parcel"  # full-width letters


@pytest.mark.parametrize(
    "bad",
    ["", "  ", "🙂🙂🙂", "??!", "ok", "x" * 301, "word " * 5000, "\x00\x01\x02", "ﷺ" * 100],
)
def test_unusable_questions_are_refused(bad: str) -> None:
    assert usable(bad) is None


def test_odd_but_real_questions_are_kept_on_one_line() -> None:
    assert usable("Where\nis  my\u200b parcel?") == "Where is my\u200b parcel?"
    assert usable("'; DROP TABLE article; --") == "'; DROP TABLE article; --"
    assert usable("מתי החבילה תגיע?") == "מתי החבילה תגיע?"


def _ev(kind: EventKind, payload: dict[str, Any]) -> Event:
    return Event(0, kind, 1, AuthorKind.BOT, None, payload)


def test_where_the_question_comes_from_in_the_event_log() -> None:
    clarify = _ev(EventKind.BOT_DECISION, {"key": "message:7", "decision": "clarify"})
    chosen = {"key": "message:9", "decision": "answer", "reason": "chosen", "article_id": "a"}
    vote = {"key": "message:11", "decision": "feedback", "helpful": True, "article_id": "a"}
    log = [clarify, _ev(EventKind.BOT_DECISION, chosen), _ev(EventKind.BOT_DECISION, vote)]
    assert teaches(chosen) and teaches(vote)
    assert not teaches({**vote, "helpful": False}) and not teaches({**chosen, "reason": "x"})
    assert question_for(log, chosen) == ("a", Source.CHOICE, 7)
    assert question_for(log, vote) == ("a", Source.HELPFUL, 7)  # through the choice
    # Asked for a person at once: the hand-off summary's last question, unless shortened.
    handoff = {"handoff": {"reason": "customer_request", "summary": "Hi?\nMy blender smokes?"}}
    assert question_before_handoff([_ev(EventKind.CONVERSATION_UPDATED, handoff)]) == (
        "My blender smokes?"
    )
    cut = {"handoff": {"summary": "A very long story…"}}
    assert question_before_handoff([_ev(EventKind.CONVERSATION_UPDATED, cut)]) is None
    assert question_before_handoff([clarify]) is None  # never handed off
    assert question_before_handoff([clarify, _ev(EventKind.CONVERSATION_UPDATED, handoff)]) == 7
    assert linked_articles("see http://x/help/articles/en-refund) and /help/articles/a%20b?x") == [
        "en-refund",
        "a b",
    ]


# --- the three sources, through the web chat and the real bot -----------------------------------


# Any runner-up at all counts as close: the bot always offers choices when it has two hits.
@SQLITE
@pytest.mark.parametrize("bot_settings", [{"bot_clarify_margin": 1.0, "bot_clarify_below": 2.0}])
async def test_a_chosen_article_learns_the_original_question(
    hub: Hub, customer: Customer, agent: Agent
) -> None:
    await twin_articles(hub)
    await customer.connect()
    question = "Could I get a present voucher for my friend?"
    reply = await ask(customer, question, "c1")
    assert "Gift vouchers" in [c["title"] for c in reply["choices"]]
    picked = await ask(customer, "Gift vouchers", "c2")  # what the button sends
    assert "Gift vouchers" in picked["text"]

    body = await eventually(hub, agent, lambda b: b["total_pending"] >= 1)
    [s] = body["suggestions"]
    # The customer's own question, not the choice's title.
    assert (s["article_id"], s["question"]) == ("gift-vouchers", question)
    assert s["sources"] == ["choice"] and s["count"] == 1
    assert s["conversation_ids"] == [customer.conversation_id]
    assert s["article_title"] == "Gift vouchers" and s["status"] == "pending"
    assert body["pending"] == {"gift-vouchers": 1}

    # "Yes, it helped" in the same conversation: the same question, one more source, no
    # second count for the same conversation.
    await ask(customer, "Yes", "c3")
    body = await eventually(
        hub, agent, lambda b: b["suggestions"] and len(b["suggestions"][0]["sources"]) == 2
    )
    [s] = body["suggestions"]
    assert s["sources"] == ["choice", "helpful"] and s["count"] == 1
    # Nothing published changed.
    assert await article(hub, "gift-vouchers") == (
        1,
        ("Can I buy a present voucher for a friend?",),
    )


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_helpful_votes_propose_and_accepting_publishes_the_question(
    hub: Hub, http: Any, base_url: str, agent: Agent
) -> None:
    before = await article(hub, "en-track-order")
    wording = ["Where has my parcel got to?", "where has my PARCEL got to ??"]
    for n, text in enumerate(wording):
        customer = await Customer(http, base_url).start()
        await customer.connect()
        answer = await ask(customer, text, "c1")
        assert "/help/articles/en-track-order" in answer["text"], answer["text"]
        await ask(customer, "Yes", "c2")
        await eventually(hub, agent, counted_over(n))
        assert customer.ws is not None
        await customer.ws.close()

    body = await listed(agent)
    [s] = body["suggestions"]
    assert (s["article_id"], s["question"]) == ("en-track-order", wording[0])
    assert s["count"] == 2 and s["sources"] == ["helpful"]
    assert len(s["conversation_ids"]) == 2
    assert await article(hub, "en-track-order") == before  # untouched until accepted

    code, done = await agent.post("/api/kb/suggestions/accept", {"ids": [s["id"]]})
    assert code == 200, done
    assert done == {"count": 1, "articles": {"en-track-order": before[0] + 1}}
    version, questions = await article(hub, "en-track-order")
    assert version == before[0] + 1 and questions == (*before[1], wording[0])
    code, versions = await agent.get("/api/kb/articles/en-track-order/versions")
    assert versions["versions"][0]["changes"] == ["questions"]
    assert versions["versions"][0]["author"]["id"] == agent.id
    # Reindexed: the console finds the new question word for word in the article.
    code, found = await agent.get("/api/kb/search", q=wording[0])
    assert code == 200 and found["answer"] == "en-track-order"
    [event] = await kb_events(hub)
    assert event.kind is EventKind.KB_SUGGESTION_ACCEPTED and event.actor_id == agent.id
    assert event.payload["suggestion"]["question"] == wording[0]
    assert (await listed(agent))["total_pending"] == 0
    assert questions_of(await listed(agent, status="accepted")) == [("en-track-order", wording[0])]

    # Accepting again is a no-op (a double click, a colleague): nothing decided twice.
    code, again = await agent.post("/api/kb/suggestions/accept", {"ids": [s["id"]]})
    assert (code, again) == (200, {"count": 0, "articles": {}})
    assert (await article(hub, "en-track-order"))[0] == version


@SQLITE
async def test_an_agent_inserting_an_article_after_a_hand_off_teaches_the_question(
    hub: Hub, customer: Customer, agent: Agent, http: Any, base_url: str
) -> None:
    link = hub.make_url("/help/articles/en-payment-methods")
    # A conversation never handed off teaches nothing from an agent's link (checked at the
    # end: its reply is on the bus before the one that teaches).
    other = await Customer(http, base_url).start()
    await other.connect()
    await ask(other, "Where has my parcel got to?", "o1")
    code, _ = await agent.post(f"/api/conversations/{other.conversation_id}/messages",
                               {"text": f"See {link}"})  # fmt: skip
    assert code == 201

    await customer.connect()
    first = await ask(customer, "zxqv wplkj mnbvc", "c1")
    assert "couldn't find an answer" in first["text"]
    asked = "Do you take qqzz crypto coins?"
    handed = await ask(customer, asked, "c2")
    assert "passing you to a colleague" in handed["text"]
    cid = customer.conversation_id
    # The inbox's "Insert article" puts the article's link into the reply.
    reply = (
        "**Which payment methods do you accept?**\n\nCards and PayPal.\n\n"
        f"[Read the article]({link})"
    )
    code, sent = await agent.post(f"/api/conversations/{cid}/messages", {"text": reply})
    assert code == 201, sent
    body = await eventually(hub, agent, lambda b: b["total_pending"] >= 1)
    [s] = body["suggestions"]
    assert (s["article_id"], s["question"], s["sources"]) == (
        "en-payment-methods",
        asked,  # the last question the bot searched for before the hand-off
        ["agent"],
    )
    assert s["conversation_ids"] == [cid]
    # The same article inserted again in that conversation counts nothing more.
    code, _ = await agent.post(f"/api/conversations/{cid}/messages", {"text": reply})
    await hub.app[SUGGESTIONS].drain()
    assert (await listed(agent))["suggestions"][0]["count"] == 1


# --- deciding: bulk, reject, limits, bad input -------------------------------------------------


async def _propose(hub: Hub, article_id: str, question: str, cid: int | None = None) -> Proposed:
    return await hub.app[SUGGESTIONS].propose(article_id, question, Source.HELPFUL, cid)


@SQLITE
async def test_dedupe_known_questions_and_limits(hub: Hub, agent: Agent) -> None:
    assert await _propose(hub, "en-refund", "Money back when??", 1) is Proposed.ADDED
    assert await _propose(hub, "en-refund", "money BACK when", 2) is Proposed.COUNTED
    assert await _propose(hub, "en-refund", "Money back when?", 2) is Proposed.SAME_CONVERSATION
    # Already one of the article's questions (or its title), whatever the case.
    assert await _propose(hub, "en-refund", "where is my REFUND") is Proposed.KNOWN
    assert await _propose(hub, "en-refund", "When do I get my refund") is Proposed.KNOWN
    assert await _propose(hub, "no-such-article", "Money back when?") is Proposed.NO_ARTICLE
    assert await _propose(hub, "en-refund", "a" * 5000) is Proposed.UNUSABLE
    assert await _propose(hub, "en-refund", "🙂") is Proposed.UNUSABLE
    [s] = (await listed(agent))["suggestions"]
    assert (s["question"], s["count"], s["conversation_ids"]) == ("Money back when??", 2, [1, 2])


@SQLITE
async def test_bulk_accept_makes_one_version_per_article_and_reject_changes_nothing(
    hub: Hub, agent: Agent
) -> None:
    for q in ("Refund still missing", "Money back when?", "Odd ❄️ question ‮txet‬ here"):
        assert await _propose(hub, "en-refund", q) is Proposed.ADDED
    assert await _propose(hub, "en-return-item", "Send back a jumper") is Proposed.ADDED
    body = await listed(agent, order="recent")
    ids = {s["question"]: s["id"] for s in body["suggestions"]}
    assert body["pending"] == {"en-refund": 3, "en-return-item": 1}
    refund, returns = await article(hub, "en-refund"), await article(hub, "en-return-item")

    code, done = await agent.post(
        "/api/kb/suggestions/accept",
        {"ids": [ids["Refund still missing"], ids["Money back when?"], ids["Send back a jumper"]]},
    )
    assert code == 200, done
    assert done["articles"] == {"en-refund": refund[0] + 1, "en-return-item": returns[0] + 1}
    assert (await article(hub, "en-refund"))[1][-2:] == ("Refund still missing", "Money back when?")

    odd = ids["Odd ❄️ question ‮txet‬ here"]
    code, done = await agent.post("/api/kb/suggestions/reject", {"ids": [odd]})
    assert (code, done) == (200, {"count": 1, "articles": {}})
    assert (await article(hub, "en-refund"))[0] == refund[0] + 1  # no new version
    assert (await listed(agent))["total_pending"] == 0
    # Seen again after a rejection: counted, but not proposed again.
    assert await _propose(hub, "en-refund", "odd ❄️ question ‮txet‬ here!") is Proposed.COUNTED
    assert (await listed(agent))["total_pending"] == 0
    kinds = [e.kind for e in await kb_events(hub)]
    assert kinds.count(EventKind.KB_SUGGESTION_ACCEPTED) == 3
    assert kinds.count(EventKind.KB_SUGGESTION_REJECTED) == 1

    # Most frequent first.
    await _propose(hub, "en-refund", "Refund?? where", 1)
    await _propose(hub, "en-refund", "Where did my money go", 1)
    await _propose(hub, "en-refund", "Where did my money go", 2)
    frequent = await listed(agent, order="frequent")
    assert [s["question"] for s in frequent["suggestions"]] == [
        "Where did my money go",
        "Refund?? where",
    ]
    only = await listed(agent, article_id="en-return-item", status="accepted")
    assert questions_of(only) == [("en-return-item", "Send back a jumper")]


@SQLITE
async def test_bad_requests_get_clear_errors(
    hub: Hub, agent: Agent, agent_http: Any, base_url: str
) -> None:
    await _propose(hub, "en-refund", "Money back when?")
    for body, code in (
        ({"ids": []}, 422),
        ({"ids": ["x"]}, 422),
        ({"ids": list(range(1, 600))}, 422),
        ({"ids": [10**9]}, 404),
        ({"nope": 1}, 422),
    ):
        status, detail = await agent.post("/api/kb/suggestions/accept", body)
        assert status == code, detail
        assert detail["error"]["code"], detail
    status, detail = await agent.get("/api/kb/suggestions", order="sideways")
    assert status == 422
    status, detail = await agent.get("/api/kb/suggestions", article_id="x" * 5000)
    assert status == 422
    # Plain agents read suggestions but cannot decide on them.
    await hub.app[AGENTS].add("plain@kb.test", "Plain", Role.AGENT, "plain-password-1")
    plain = await Agent(agent_http, base_url).login("plain@kb.test", "plain-password-1")
    assert (await listed(plain))["total_pending"] == 1
    [s] = (await listed(plain))["suggestions"]
    for action in ("accept", "reject"):
        code, detail = await plain.post(f"/api/kb/suggestions/{action}", {"ids": [s["id"]]})
        assert code == 403, detail
    code, detail = await plain.post("/api/kb/gaps/draft", {"questions": ["Tulips?"]})
    assert code == 403
    assert (await listed(agent))["total_pending"] == 1


# --- gap cluster -> draft ------------------------------------------------------------------------


@SQLITE
async def test_a_gap_cluster_becomes_an_unpublished_draft(hub: Hub, agent: Agent) -> None:
    for q in ("Do you sell tulip bulbs?", "do you sell tulip bulbs", "Can I buy tulip bulbs?"):
        code, _ = await agent.get("/api/kb/search", q=q)
        assert code == 200
    code, report = await agent.get("/api/kb/gaps")
    assert code == 200
    cluster = next(g for g in report["groups"] if "tulip" in g["example"].lower())
    code, draft = await agent.post(
        "/api/kb/gaps/draft",
        {"questions": [*cluster["questions"], "x" * 5000, "🙂"], "language": None},
    )
    assert code == 201, draft
    assert draft["status"] == "draft" and draft["version"] == 1
    assert draft["title"] == cluster["example"][:1].upper() + cluster["example"][1:]
    assert draft["questions"] == cluster["questions"]  # the unusable ones left out
    assert draft["language"] == "en"
    # Not published: the bot and the help center do not see it.
    code, found = await agent.get("/api/kb/search", q=cluster["example"])
    assert draft["id"] not in [h["article_id"] for h in found["hits"]]

    code, detail = await agent.post("/api/kb/gaps/draft", {"questions": ["🙂", ""]})
    assert (code, detail["error"]["code"]) == (422, "empty_cluster")
    code, zh = await agent.post("/api/kb/gaps/draft", {"questions": ["可以买郁金香球茎吗？"]})
    assert code == 201 and zh["language"] == "zh" and zh["status"] == "draft"
