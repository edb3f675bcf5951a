"""A policy and helpers shared by the routing tests."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from hub.routing import (
    AgentProfile,
    Decision,
    ManualClock,
    Policy,
    Presence,
    Requirements,
    Router,
    Task,
    load_policy,
)

POLICY = """\
skills: [billing, tech, text-relay]
teams: [tier1, tier2, special-needs]
offer_timeout_s: 20
aging_s: 60
accessibility:
  deaf_hard_of_hearing:
    skills: {text-relay: 3}
    min_priority: high
inboxes:
  support:
    filters:
      - name: special-needs
        match: {needs: [deaf_hard_of_hearing]}
        steps:
          - {timeout_s: 60, team: special-needs}
          - {timeout_s: 300}
        overflow: callback
      - name: billing
        match: {skills: [billing]}
        steps:
          - {timeout_s: 30, team: tier1, min_level: {billing: 4}}
          - {timeout_s: 60, team: tier2, min_level: {billing: 2}, priority: urgent}
          - {timeout_s: 120, skip_if_no_agents: true}
        overflow: voicemail
      - name: everything-else
        steps:
          - {timeout_s: 600}
        overflow: leave_message
"""

D = TypeVar("D")


def policy(text: str = POLICY) -> Policy:
    return load_policy(text, "policy.yaml")


def router(text: str = POLICY) -> tuple[Router, ManualClock]:
    clock = ManualClock()
    return Router(policy(text), clock), clock


def agent(
    router: Router,
    agent_id: int,
    skills: dict[str, int],
    *,
    languages: Iterable[str] = ("en",),
    teams: Iterable[str] = (),
    presence: Presence = Presence.AVAILABLE,
    **extra: object,
) -> list[Decision]:
    profile = AgentProfile(
        agent_id,
        skills,
        frozenset(languages),
        frozenset(teams),
        **extra,  # type: ignore[arg-type]
    )
    return router.upsert_agent(profile, presence)


def task(
    task_id: int,
    clock: ManualClock,
    *,
    channel: str = "webchat",
    inbox: str = "support",
    **requirements: object,
) -> Task:
    return Task(task_id, inbox, channel, Requirements(**requirements), clock())  # type: ignore[arg-type]


def only(decisions: Sequence[Decision], kind: type[D]) -> list[D]:
    return [d for d in decisions if isinstance(d, kind)]
