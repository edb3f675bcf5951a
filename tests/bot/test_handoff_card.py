"""What the bot hands an agent with a conversation (the inbox's hand-over card): a summary
of what the customer asked and the details it collected or read, through the real web chat."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.bot.conftest import ask
from tests.support import Agent, Customer


async def handoff(agent: Agent, conversation_id: int) -> dict[str, Any]:
    code, detail = await agent.get(f"/api/conversations/{conversation_id}")
    assert code == 200, detail
    assert detail["handoff"] is not None
    return dict(detail["handoff"])


async def test_the_summary_holds_the_questions_and_the_details_what_was_written(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    answer = await ask(customer, "Where is my parcel? My order A-12345 has not arrived", "c1")
    assert "Did this answer your question?" in answer["text"]
    await ask(customer, "No", "c2")  # an answer to the bot, not a question
    again = await ask(customer, "How do I reset my password? I use ana@example.com", "c3")
    assert "Did this answer your question?" in again["text"]
    reply = await ask(customer, "talk to a human please", "c4")
    assert "colleague" in reply["text"]

    card = await handoff(agent, customer.conversation_id)
    assert card["reason"] == "customer_request"
    # The latest two questions, one a line; the bare request for a person says nothing more.
    assert card["summary"].split("\n") == [
        "Where is my parcel? My order A-12345 has not arrived",
        "How do I reset my password? I use ana@example.com",
    ]
    assert card["details"] == {"order_number": "A-12345", "email": "ana@example.com"}


@pytest.mark.parametrize("inbox_rules", [{"required_details": ["name", "order_number"]}])
async def test_details_the_bot_asked_for_win_over_what_it_read(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    await ask(customer, "订单 778899 还没到，我要投诉", "c1")  # a complaint: hand-off at once
    await ask(customer, "我叫李明", "c2")  # the details the bot asks for are no questions
    await ask(customer, "不知道", "c3")
    await ask(customer, "是 B-4242", "c4")
    card = await handoff(agent, customer.conversation_id)
    assert card["reason"] == "complaint"
    assert card["details"] == {"name": "我叫李明", "order_number": "B-4242"}
    assert card["summary"] == "订单 778899 还没到，我要投诉"


async def test_a_bare_request_for_a_person_leaves_the_summary_empty(
    hub: TestClient[Any, Any], customer: Customer, agent: Agent
) -> None:
    await customer.connect()
    await ask(customer, "转人工", "c1")
    card = await handoff(agent, customer.conversation_id)
    assert card["summary"] == "" and card["details"] == {}
