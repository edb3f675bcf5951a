"""Random sequences of routing events, checked against a brute-force reading of the rules:
the indexes never hide a fitting agent, agents pull the most urgent work they fit, and
capacity always adds up."""

from __future__ import annotations

import random

import pytest

from hub.routing import (
    AgentProfile,
    Assigned,
    Decision,
    ManualClock,
    Offered,
    OfferExpired,
    Presence,
    Requirements,
    Router,
    Task,
    load_policy,
)

SKILLS = ["a", "b", "c", "d"]
LANGS = ["en", "zh"]
COSTS = {"voice": 100, "webchat": 35, "email": 20}
POLICY = """\
skills: [a, b, c, d]
aging_s: 30
offer_timeout_s: 20
inboxes:
  "*":
    filters:
      - name: all
        steps: [{timeout_s: 1000000}]
"""


def fits(profile: AgentProfile, task: Task, room: int) -> bool:
    req = task.requirements
    return (
        all(profile.skills.get(s, 0) >= lvl for s, lvl in req.skills.items())
        and (req.language is None or req.language in profile.languages)
        and COSTS[task.channel] <= room
    )


def rank(task: Task) -> tuple[float, int]:
    return (task.created_at - task.requirements.priority * 30, task.id)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_events_keep_the_rules(seed: int) -> None:
    rng = random.Random(seed)
    clock = ManualClock()
    router = Router(load_policy(POLICY), clock)
    profiles: dict[int, AgentProfile] = {}
    for aid in range(1, 21):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(1, 3))}
        profiles[aid] = AgentProfile(aid, skills, frozenset(rng.sample(LANGS, rng.randint(1, 2))))
        router.upsert_agent(profiles[aid], Presence.OFFLINE)
    tasks: dict[int, Task] = {}
    offered: dict[int, int] = {}  # task -> agent
    assigned: dict[int, int] = {}
    declined: dict[int, set[int]] = {}
    next_id = 0
    assignments = 0

    def record(decisions: list[Decision], before_waiting: set[int]) -> None:
        for d in decisions:
            if isinstance(d, Offered):
                if d.why.trigger == "agent":  # the agent pulled: it must be the most urgent fit
                    held = sum(
                        COSTS[tasks[t].channel]
                        for t, a in [*offered.items(), *assigned.items()]
                        if a == d.agent_id and t != d.task_id
                    )
                    room = 100 - held
                    fitting = [
                        t
                        for t in before_waiting
                        if t not in offered
                        and d.agent_id not in declined.get(t, set())
                        and fits(profiles[d.agent_id], tasks[t], room)
                    ]
                    assert fitting and min(fitting, key=lambda t: rank(tasks[t])) == d.task_id
                offered[d.task_id] = d.agent_id
            elif isinstance(d, OfferExpired):
                offered.pop(d.task_id, None)
                declined.setdefault(d.task_id, set()).add(d.agent_id)
            elif isinstance(d, Assigned):
                nonlocal assignments
                assignments += 1
                offered.pop(d.task_id, None)
                assigned[d.task_id] = d.agent_id

    for _step in range(1500):
        waiting = {t for t in tasks if router.is_waiting(t)}
        op = rng.random()
        if op < 0.35:
            next_id += 1
            req = Requirements(
                {s: rng.randint(1, 3) for s in rng.sample(SKILLS, rng.randint(0, 2))},
                rng.choice([*LANGS, None]),
                priority=rng.randint(0, 3),
            )
            task = Task(next_id, "web", rng.choice(list(COSTS)), req, clock())
            tasks[next_id] = task
            record(router.enqueue(task), waiting)
        elif op < 0.5 and offered:
            t = rng.choice(sorted(offered))
            record(router.accept(t, offered[t]), waiting)
        elif op < 0.55 and offered:
            t = rng.choice(sorted(offered))
            agent = offered.pop(t)
            declined.setdefault(t, set()).add(agent)
            record(router.decline(t, agent), waiting | {t})
        elif op < 0.75 and assigned:
            t = rng.choice(sorted(assigned))
            del assigned[t]
            record(router.finish(t), waiting)
        elif op < 0.9:
            aid = rng.choice(sorted(profiles))
            presence = rng.choice([Presence.AVAILABLE] * 3 + [Presence.AWAY, Presence.OFFLINE])
            record(router.set_presence(aid, presence), waiting)
        else:
            clock.advance(rng.choice([1, 5, 25]))
            record(router.tick(), waiting)

        # capacity adds up, and no waiting conversation has an available agent that fits it
        waiting_now = [t for t in tasks if router.is_waiting(t)]
        for aid, profile in profiles.items():
            held = [t for t, a in [*offered.items(), *assigned.items()] if a == aid]
            used = sum(COSTS[tasks[t].channel] for t in held)
            assert router.used_capacity(aid) == used
            if router.presence(aid) is not Presence.AVAILABLE:
                continue
            for t in waiting_now:
                if aid not in declined.get(t, set()):
                    assert not fits(profile, tasks[t], 100 - used), (t, aid)
    assert assignments > 100  # the run exercised the rules, not an idle router
