"""Bot and agent messages are Markdown and reach every screen as sanitised HTML (`html` in
message JSON, web-chat frames and history); customer messages are plain text (`html` null)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from hub import formatting
from tests.bot.conftest import ask
from tests.support import Agent, Customer, next_frame

RAW_MARKDOWN = re.compile(r"\*\*|\|\s*-{3}|\]\(")


def links_of(markup: str) -> list[str]:
    return re.findall(r"<a [^>]*>", markup)


async def test_bot_and_agent_messages_carry_html_customer_ones_do_not(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    answer = await ask(customer, "How long does delivery take?", "c1")
    assert answer["html"] == formatting.html(answer["text"])
    assert not RAW_MARKDOWN.search(answer["html"])
    # The article's link is a real link that opens in a new tab, not text.
    assert re.search(r'<a href="http[^"]*/help/articles/en-shipping-times"', answer["html"])
    for link in links_of(answer["html"]):
        assert 'target="_blank"' in link and 'rel="noopener noreferrer nofollow"' in link

    pasted = "**not bold** <b>mine</b> | a | b |"
    ack = await customer.say(pasted, "c2")
    assert ack["type"] == "ack"

    status, sent = await agent.post(
        f"/api/conversations/{customer.conversation_id}/messages",
        {
            "text": "Sure! **Express** is [next day](https://shop.example/express).\n\n<script>x()</script>"
        },
    )
    assert status == 201, sent
    assert sent["message"]["html"] == (
        '<p>Sure! <strong>Express</strong> is <a href="https://shop.example/express"'
        ' target="_blank" rel="noopener noreferrer nofollow">next day</a>.</p>'
    )
    assert customer.ws is not None
    frame = await next_frame(
        customer.ws, lambda f: f["type"] == "message" and f["author"] == "agent"
    )
    assert frame["html"] == sent["message"]["html"]

    status, detail = await agent.get(f"/api/conversations/{customer.conversation_id}")
    assert status == 200, detail
    by_author = {}
    for m in detail["messages"]:
        by_author.setdefault(m["author"], []).append(m)
    assert [m["html"] for m in by_author["customer"]] == [None, None]
    assert by_author["customer"][1]["text"] == pasted  # kept as typed, shown escaped
    assert all(m["html"] == formatting.html(m["text"]) for m in by_author["bot"])
    assert by_author["agent"][0]["html"] == sent["message"]["html"]

    history = await customer.history()
    assert [(m["author"], m["html"] is None) for m in history["messages"]][:3] == [
        ("customer", True),
        ("bot", False),
        ("customer", True),
    ]
    assert history["messages"][1]["html"] == answer["html"]
