"""What the bot answers, and in which form, through the real web chat and the KB console:
the short answer with a "Read it in full" link on chat, the whole article on e-mail; questions
wrapped in extra words, markup or a long paste; Traditional Chinese."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hub.api.keys import STORE
from hub.model import EventKind
from tests.bot.conftest import ask
from tests.support import Agent, Customer

RESET_SHORT = (
    "Select Forgot password on the sign-in page; we e-mail a reset link that works for one hour."
)


def has_link(text: str, label: str, article_id: str) -> bool:
    """The text carries a Markdown link labelled `label` to the article's help-center page."""
    return (
        re.search(rf"\[{label}\]\(https?://[^)\s]+/help/articles/{article_id}\)", text) is not None
    )


async def decisions(hub: TestClient[Any, Any], conversation_id: int) -> list[dict[str, Any]]:
    events = await hub.app[STORE].read(lambda uow: uow.events(conversation_id))
    return [dict(e.payload) for e in events if e.kind is EventKind.BOT_DECISION]


async def console(agent: Agent, q: str, **params: str) -> dict[str, Any]:
    status, body = await agent.get("/api/kb/search", q=q, **params)
    assert status == 200, body
    return dict(body)


async def test_chat_gets_the_short_answer_and_a_link_and_the_console_shows_the_same(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    reply = await ask(customer, "how do I reset my password?", "c1")
    text = reply["text"]
    assert RESET_SHORT in text
    assert has_link(text, "Read it in full", "en-reset-password")
    assert "We send a link that is valid for one hour" not in text  # not the body
    assert "**Forgot password?**" not in text

    found = await console(agent, "how do I reset my password?")
    assert found["answer"] == "en-reset-password"
    bot = found["reply"]
    assert (bot["channel"], bot["decision"], bot["article_id"]) == (
        "webchat",
        "answer",
        "en-reset-password",
    )
    assert [m["text"] for m in bot["messages"]] == [text]  # exactly what the customer got
    assert bot["messages"][0]["choices"] == ["Yes", "No"]


async def test_email_gets_the_whole_article_and_chinese_gets_a_chinese_link(
    agent: Agent, hub: TestClient[Any, Any]
) -> None:
    mail = (await console(agent, "how do I reset my password?", channel="email"))["reply"]
    [message] = mail["messages"]
    assert "Select **Forgot password?** on the sign-in page" in message["text"]  # the body
    assert "No e-mail? Check your spam folder" in message["text"]
    assert has_link(message["text"], "Read it in full", "en-reset-password")

    voice = (await console(agent, "how do I reset my password?", channel="voice"))["reply"]
    assert RESET_SHORT in voice["messages"][0]["text"]
    assert "](" not in voice["messages"][0]["text"]  # nothing to click on the phone

    zh = (await console(agent, "忘记密码怎么办", channel="telegram"))["reply"]
    assert zh["article_id"] == "zh-reset-password"
    assert "在登录页面点击忘记密码" in zh["messages"][0]["text"]
    assert has_link(zh["messages"][0]["text"], "查看全文", "zh-reset-password")


@pytest.mark.parametrize(
    ("question", "article_id"),
    [
        ("I want to return my rocket skates.", "en-return-item"),
        (
            "I bought rocket skates last week and they do not fit. How do I return them?",
            "en-return-item",
        ),
        (
            '<div style="font-family:Arial,sans-serif"><p>Hello,</p><p>how do I return an item?'
            "</p></div>",
            "en-return-item",
        ),
        ("<p>Where is my parcel?</p><br><p>Thanks</p>", "en-track-order"),
        ("忘記密碼怎麼辦", "zh-reset-password"),
    ],
)
async def test_questions_with_extra_words_markup_or_traditional_characters_are_answered(
    hub: TestClient[Any, Any], customer: Customer, question: str, article_id: str
) -> None:
    await customer.connect()
    await ask(customer, question, "c1")
    [decision] = await decisions(hub, customer.conversation_id)
    assert (decision["decision"], decision["article_id"]) == ("answer", article_id), decision


async def test_a_long_paste_is_answered_from_its_first_question_and_says_so(
    hub: TestClient[Any, Any], customer: Customer
) -> None:
    story = (
        "Hello, I ordered a pair of rocket skates for my daughter's birthday and they came in "
        "the wrong size, the box was also a bit damaged on one side but the skates look fine. "
    )
    paste = story * 3 + "How do I return an item? " + "Order details follow. " * 40
    assert len(paste) > 1000
    await customer.connect()
    reply = await ask(customer, paste, "c1")
    assert "That's a long message; I looked at its beginning." in reply["text"]
    [decision] = await decisions(hub, customer.conversation_id)
    assert (decision["decision"], decision["article_id"]) == ("answer", "en-return-item")
    assert decision["query_cut"] is True
