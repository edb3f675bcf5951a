"""The conversation lifecycle rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub import model
from hub.errors import InvalidTransition
from hub.model import Conversation
from hub.model import ConversationStatus as S

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def conv(status: S, assignee: int | None = None) -> Conversation:
    return Conversation(
        id=1, contact_id=1, channel="webchat", inbox="website", status=status, assignee_id=assignee
    )


def test_the_main_path() -> None:
    c = conv(S.BOT)
    c = model.transition(c, S.QUEUED, NOW)
    c = model.assign(c, 7, NOW)
    assert (c.status, c.assignee_id) == (S.ASSIGNED, 7)
    c = model.transition(c, S.PENDING, NOW)
    c = model.after_customer_message(c, NOW)
    assert (c.status, c.assignee_id) == (S.ASSIGNED, 7)
    c = model.transition(c, S.RESOLVED, NOW)
    assert c.resolved_at == NOW
    c = model.transition(c, S.CLOSED, NOW)
    c = model.reopen(c, NOW)
    assert (c.status, c.assignee_id, c.resolved_at) == (S.ASSIGNED, 7, None)


@pytest.mark.parametrize(
    ("start", "to"),
    [(S.QUEUED, S.PENDING), (S.CLOSED, S.RESOLVED), (S.BOT, S.CLOSED), (S.PENDING, S.CLOSED)],
)
def test_illegal_transitions_are_refused(start: S, to: S) -> None:
    with pytest.raises(InvalidTransition):
        model.transition(conv(start), to, NOW)


def test_reopen_without_agent_goes_to_the_queue() -> None:
    c = model.reopen(conv(S.RESOLVED), NOW)
    assert (c.status, c.assignee_id) == (S.QUEUED, None)
    with pytest.raises(InvalidTransition):
        model.reopen(conv(S.ASSIGNED, 3), NOW)


def test_customer_message_reopens_finished_conversations() -> None:
    for finished in (S.RESOLVED, S.CLOSED):
        after = model.after_customer_message(conv(finished, 4), NOW)
        assert (after.status, after.assignee_id, after.last_message_at) == (S.ASSIGNED, 4, NOW)
    queued = model.after_customer_message(conv(S.QUEUED), NOW)
    assert queued.status is S.QUEUED


@pytest.mark.parametrize("status", list(S))
def test_a_second_customer_message_at_the_same_instant_changes_nothing(status: S) -> None:
    # A group-committed batch applies after_customer_message once per conversation, however
    # many of the batch's messages (all stamped with one instant) belong to it.
    once = model.after_customer_message(conv(status, 4), NOW)
    assert model.after_customer_message(once, NOW) == once


def test_first_response_is_kept() -> None:
    first = model.after_business_reply(conv(S.ASSIGNED, 1), NOW)
    later = NOW.replace(hour=11)
    assert model.after_business_reply(first, later).first_response_at == NOW


def test_requeue_drops_the_assignee() -> None:
    c = model.transition(conv(S.ASSIGNED, 5), S.QUEUED, NOW)
    assert c.assignee_id is None
