"""The routing engine's rules, driven through its public methods with a hand-moved clock."""

from __future__ import annotations

import pytest

from hub.errors import InvalidTransition
from hub.model import AccessibilityNeed
from hub.routing import (
    Assigned,
    Offered,
    OfferExpired,
    Overflowed,
    Presence,
    PresenceChanged,
    Queued,
)
from tests.routing.support import POLICY, agent, only, policy, router, task


def test_best_scored_agent_gets_the_offer_and_the_why_lists_the_candidates() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 2})
    agent(r, 2, {"tech": 5})
    agent(r, 3, {"billing": 5})  # not qualified
    clock.advance(5)
    offers = only(r.enqueue(task(10, clock, skills={"tech": 1})), Offered)
    assert [o.agent_id for o in offers] == [2]
    why = offers[0].why
    assert why.chosen == 2 and why.candidate_count == 2
    assert [c.agent_id for c in why.candidates] == [2, 1]
    assert why.candidates[0].score > why.candidates[1].score
    assert why.candidates[0].proficiency == pytest.approx(1.0)


def test_longest_idle_wins_between_equal_agents() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 3})
    clock.advance(60)
    agent(r, 2, {"tech": 3})
    clock.advance(1)
    assert only(r.enqueue(task(1, clock, skills={"tech": 1})), Offered)[0].agent_id == 1


def test_capacity_budget_is_shared_across_channels() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 3})
    offered = []
    for i, channel in enumerate(["webchat", "webchat", "email", "webchat", "email", "voice"]):
        decisions = r.enqueue(task(i, clock, channel=channel, skills={"tech": 1}))
        for offer in only(decisions, Offered):
            r.accept(offer.task_id, offer.agent_id)
            offered.append(channel)
    # 35 + 35 + 20 = 90 of 100: a third chat (35), another email (20), a call (100) don't fit
    assert offered == ["webchat", "webchat", "email"]
    assert r.used_capacity(1) == 90 and r.waiting_count == 3
    r.finish(0)  # a chat ends: 55 used, the oldest work that fits (the chat, id 3) comes next
    assert r.agent_of(3) is None and r.is_waiting(3) is False
    assert r.used_capacity(1) == 90


def test_per_agent_channel_costs_and_capacity() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 3}, capacity=50, costs={"webchat": 10})
    accepted = 0
    for i in range(6):
        for offer in only(r.enqueue(task(i, clock, skills={"tech": 1})), Offered):
            r.accept(offer.task_id, offer.agent_id)
            accepted += 1
    assert accepted == 5 and r.used_capacity(1) == 50


def test_only_available_agents_are_offered_work_and_wrap_up_delays_the_next() -> None:
    r, clock = router(POLICY.replace("aging_s: 60", "aging_s: 60\nwrap_up_s: 30"))
    agent(r, 1, {"tech": 3}, presence=Presence.AWAY, capacity=35)
    assert only(r.enqueue(task(1, clock, skills={"tech": 1})), Offered) == []
    offer = only(r.set_presence(1, Presence.AVAILABLE), Offered)[0]
    r.accept(offer.task_id, 1)
    r.enqueue(task(2, clock, skills={"tech": 1}))
    decisions = r.finish(1)
    assert PresenceChanged(1, Presence.AFTER_CONTACT_WORK, "wrap_up") in decisions
    assert only(decisions, Offered) == []
    clock.advance(29)
    assert r.tick() == []
    clock.advance(1)
    decisions = r.tick()
    assert PresenceChanged(1, Presence.AVAILABLE, "wrap_up_done") in decisions
    assert [o.task_id for o in only(decisions, Offered)] == [2]
    for p in (Presence.BUSY, Presence.OFFLINE):
        r.set_presence(1, p)
        r.finish(2)
        assert only(r.enqueue(task(3 + len(p), clock, skills={"tech": 1})), Offered) == []


def test_escalation_steps_follow_their_timeouts() -> None:
    r, clock = router()
    agent(r, 1, {"billing": 3}, teams=["tier2"])  # too junior for step 0, in tier2
    agent(r, 2, {"billing": 5}, teams=["tier1"], presence=Presence.BUSY)
    decisions = r.enqueue(task(7, clock, skills={"billing": 1}))
    assert decisions == [Queued(7, "billing", 0, 1)]
    clock.advance(29.9)
    assert r.tick() == []
    clock.advance(0.1)
    decisions = r.tick()
    assert decisions[0] == Queued(7, "billing", 1, 3)  # step 1 makes it urgent
    assert [o.agent_id for o in only(decisions, Offered)] == [1]


def test_last_step_overflows_and_skip_if_no_agents_skips() -> None:
    r, clock = router()
    agent(r, 2, {"billing": 5}, teams=["tier1"], presence=Presence.BUSY)
    r.enqueue(task(7, clock, skills={"billing": 1}))
    clock.advance(30)
    r.tick()
    r.set_presence(2, Presence.OFFLINE)  # nobody on shift for the last step
    clock.advance(60)
    decisions = r.tick()
    assert decisions == [
        Queued(7, "billing", 2, 3, skipped=True),
        Overflowed(7, "voicemail", "timeout"),
    ]
    assert not r.is_waiting(7)


def test_offer_not_accepted_in_time_sets_the_agent_away_and_goes_to_the_next() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 5})
    agent(r, 2, {"tech": 2})
    assert only(r.enqueue(task(1, clock, skills={"tech": 1})), Offered)[0].agent_id == 1
    clock.advance(19)
    assert r.tick() == []
    clock.advance(1)
    decisions = r.tick()
    assert decisions[:2] == [OfferExpired(1, 1), PresenceChanged(1, Presence.AWAY, "offer_timeout")]
    assert only(decisions, Offered)[0].agent_id == 2
    assert r.presence(1) is Presence.AWAY and r.used_capacity(1) == 0
    with pytest.raises(InvalidTransition):
        r.accept(1, 1)  # too late
    assert only(r.accept(1, 2), Assigned)[0].agent_id == 2


def test_declined_offer_goes_to_the_next_best_agent() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 5})
    agent(r, 2, {"tech": 2})
    r.enqueue(task(1, clock, skills={"tech": 1}))
    assert only(r.decline(1, 1), Offered)[0].agent_id == 2
    assert r.presence(1) is Presence.AVAILABLE


def test_preferred_agent_gets_a_bonus_for_the_configured_time() -> None:
    text = POLICY.replace("aging_s: 60", "aging_s: 60\npreferred_agent_s: 3600")
    r, clock = router(text)
    agent(r, 1, {"tech": 5})
    agent(r, 2, {"tech": 3})
    since = clock()
    offer = only(
        r.enqueue(task(1, clock, skills={"tech": 1}, preferred_agent=2, preferred_since=since)),
        Offered,
    )[0]
    assert offer.agent_id == 2 and offer.why.candidates[0].preferred
    r.decline(1, 2)
    r.cancel(1)
    clock.advance(3601)
    offer = only(
        r.enqueue(task(2, clock, skills={"tech": 1}, preferred_agent=2, preferred_since=since)),
        Offered,
    )[0]
    assert offer.agent_id == 1


def test_accessibility_need_routes_to_the_dedicated_team_with_raised_priority() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 5, "text-relay": 5})  # qualified but not in the team
    agent(r, 2, {"tech": 1, "text-relay": 3}, teams=["special-needs"])
    decisions = r.enqueue(
        task(
            1, clock, skills={"tech": 1}, needs=frozenset({AccessibilityNeed.DEAF_HARD_OF_HEARING})
        )
    )
    assert decisions[0] == Queued(1, "special-needs", 0, 2)  # raised to high
    assert only(decisions, Offered)[0].agent_id == 2


def test_higher_priority_first_then_age_and_aging_prevents_starvation() -> None:
    r, clock = router()  # aging_s 60: a minute of waiting is worth one priority level
    agent(r, 1, {"tech": 3}, capacity=35, presence=Presence.BUSY)
    r.enqueue(task(1, clock, skills={"tech": 1}, priority=0))  # low, t=0
    clock.advance(100)
    r.enqueue(task(2, clock, skills={"tech": 1}, priority=2))  # high, t=100: key -20 < 0
    clock.advance(30)
    r.enqueue(task(3, clock, skills={"tech": 1}, priority=2))  # high, t=130: key 10 > 0
    order = []
    offers = only(r.set_presence(1, Presence.AVAILABLE), Offered)
    while offers:
        tid = offers[0].task_id
        order.append(tid)
        r.accept(tid, 1)
        offers = only(r.finish(tid), Offered)
    assert order == [2, 1, 3]


def test_language_must_match() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 5}, languages=["en"])
    agent(r, 2, {"tech": 1}, languages=["zh", "en"])
    assert (
        only(r.enqueue(task(1, clock, skills={"tech": 1}, language="zh")), Offered)[0].agent_id == 2
    )


def test_business_hours_and_holidays() -> None:
    text = POLICY.replace(
        "  support:\n",
        "  support:\n"
        "    hours:\n"
        "      timezone: Asia/Shanghai\n"
        "      weekly: {mon: ['09:00-18:00'], tue: ['09:00-18:00']}\n"
        "      holidays: [2026-11-24]\n"
        "      closed: callback\n",
    )
    r, clock = router(text)
    agent(r, 1, {"tech": 3})
    clock.now = 1795395600.0  # Mon 2026-11-23 09:00 in Shanghai (01:00 UTC)
    assert only(r.enqueue(task(1, clock, skills={"tech": 1})), Offered)
    clock.now -= 1  # 08:59:59
    assert r.enqueue(task(2, clock)) == [Overflowed(2, "callback", "closed")]
    clock.now += 86400 + 3600  # Tuesday 10:00, a holiday
    assert r.enqueue(task(3, clock)) == [Overflowed(3, "callback", "closed")]
    hours = policy(text).inboxes["support"].hours
    assert hours is not None
    # Monday 17:00 to Wednesday 10:00: 1 h on Monday; Tuesday is a holiday, Wednesday closed
    assert hours.open_seconds(1795395600.0 + 8 * 3600, 1795395600.0 + 49 * 3600) == 3600


def test_transfer_to_an_agent_and_to_a_team_and_supervisor_reassign() -> None:
    r, clock = router()
    agent(r, 1, {"tech": 5})
    agent(r, 2, {"tech": 1})
    agent(r, 3, {"tech": 1}, teams=["tier2"])
    offer = only(r.enqueue(task(1, clock, skills={"tech": 1})), Offered)[0]
    r.accept(1, offer.agent_id)
    holder = offer.agent_id
    decisions = r.transfer(1, agent_id=2)
    assert only(decisions, Offered)[0].agent_id == 2 and r.used_capacity(holder) == 0
    r.accept(1, 2)
    decisions = r.transfer(1, team="tier2")
    assert only(decisions, Offered)[0].agent_id == 3
    r.accept(1, 3)
    assert r.reassign(1, 1) == [Assigned(1, 1, 0.0, forced=True)]
    assert r.agent_of(1) == 1 and r.used_capacity(3) == 0 and r.used_capacity(1) == 35


def test_policy_change_re_evaluates_waiting_conversations() -> None:
    r, clock = router()
    agent(r, 1, {"billing": 2})  # no team: step 0 (tier1, billing 4) cannot use it
    r.enqueue(task(1, clock, skills={"billing": 1}))
    assert r.is_waiting(1)
    relaxed = POLICY.replace("team: tier1, min_level: {billing: 4}", "min_level: {billing: 1}")
    decisions = r.set_policy(policy(relaxed))
    assert only(decisions, Offered)[0].agent_id == 1


def test_routing_the_same_conversation_twice_is_refused() -> None:
    r, clock = router()
    r.enqueue(task(1, clock))
    with pytest.raises(InvalidTransition):
        r.enqueue(task(1, clock))


def test_after_a_policy_change_the_old_steps_timers_do_not_fire() -> None:
    r, clock = router()
    r.enqueue(task(7, clock, skills={"billing": 1}))  # step 0 until t=30
    clock.advance(10)
    assert r.set_policy(policy()) == [Queued(7, "billing", 0, 1)]  # step 0 again until t=40
    clock.advance(20)
    assert r.tick() == []
    clock.advance(10)
    assert r.tick()[0] == Queued(7, "billing", 1, 3)
