"""Scoring eligible agents: weighted proficiency, longest idle, lowest occupancy, preference."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from hub.routing.index import AgentState, Signature
from hub.routing.policy import Weights
from hub.routing.tasks import Candidate, Why

WHY_KEEPS = 5  # candidates recorded in the event log; the count says how many there were


def score_candidates(
    agents: Sequence[AgentState],
    sig: Signature,
    weights: Weights,
    preferred: int | None,
    now: float,
    trigger: str,
) -> Why:
    """Score every candidate and say who won; `agents` is not empty.

    Proficiency is the mean level over the required skills on a 0..1 scale; idle time is
    relative to the longest-idle candidate so the weight means the same at any hour; ties go
    to the longest idle, then the lowest agent id, so a decision can be reproduced.
    """
    skills = sig[2]
    if len(agents) == 1:  # an agent pulling work: nothing to compare, but say how it scores
        agent = agents[0]
        cand = _candidate(agent, skills, weights, preferred, now, 1.0)
        return Why(trigger, 1, (cand,), cand.agent_id)
    longest = max(now - a.last_work_at for a in agents)
    scored: list[tuple[float, float, int, Candidate]] = []
    for agent in agents:
        idle_s = now - agent.last_work_at
        cand = _candidate(
            agent, skills, weights, preferred, now, idle_s / longest if longest > 0 else 0.0
        )
        scored.append((cand.score, idle_s, -cand.agent_id, cand))
    best = heapq.nlargest(WHY_KEEPS, scored, key=lambda t: (t[0], t[1], t[2]))
    return Why(trigger, len(agents), tuple(t[3] for t in best), best[0][3].agent_id)


def _candidate(
    agent: AgentState,
    skills: tuple[tuple[str, int], ...],
    weights: Weights,
    preferred: int | None,
    now: float,
    idle: float,
) -> Candidate:
    levels = agent.profile.skills
    proficiency = sum(levels[s] for s, _ in skills) / (5 * len(skills)) if skills else 0.0
    occupancy = agent.used / agent.capacity if agent.capacity else 1.0
    is_preferred = agent.profile.agent_id == preferred
    score = (
        weights.proficiency * proficiency
        + weights.idle * idle
        + weights.occupancy * (1.0 - occupancy)
        + (weights.preferred if is_preferred else 0.0)
    )
    return Candidate(
        agent.profile.agent_id,
        score,
        proficiency,
        now - agent.last_work_at,
        occupancy,
        is_preferred,
    )
