"""The router's indexes: who can take what without scanning every agent or conversation.

A conversation's current needs are a Signature (language, team, skills with minimum levels,
channel). Agents are bucketed by (language, skill) and by team, so finding candidates for a
signature reads the smallest matching bucket. Waiting conversations are kept in one heap per
signature, and signatures are bucketed by (language, first skill), so an agent who frees up
looks only at the heads of the queues it could serve. Both costs depend on how many kinds of
work there are, not on how many agents or conversations.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.routing.agents import AgentProfile, Presence
from hub.routing.policy import Filter
from hub.routing.tasks import Task

# (language or None, team or None, ((skill, min level), ...) sorted, channel)
Signature = tuple[str | None, str | None, tuple[tuple[str, int], ...], str]
Token = tuple[str | None, str | None]  # (language, skill); None matches work that needs none
HeapEntry = tuple[float, int, int, "WorkState"]  # (key, order, version, work)
Heap = list[HeapEntry]
_NONE: frozenset[int] = frozenset()


@dataclass(slots=True, eq=False)
class AgentState:
    profile: AgentProfile
    capacity: int
    presence: Presence
    wrap_up_s: float
    last_work_at: float  # "longest idle" counts from here
    used: int = 0
    held: dict[int, int] = field(default_factory=dict)  # task id -> cost (offered or assigned)
    acw_version: int = 0
    tokens: tuple[Token, ...] = ()
    costs: dict[str, int] = field(default_factory=dict)  # the policy's, then its own
    default_cost: int = 35
    # the queues it qualifies for (budget aside), by channel, with their heaps
    eligible: dict[str, list[tuple[Signature, Heap]]] = field(default_factory=dict)

    def cost(self, channel: str) -> int:
        return self.costs.get(channel, self.default_cost)

    def fits(self, sig: Signature, cost: int) -> bool:
        """Qualified for the signature and budget left for its cost (ignores presence)."""
        return self.capacity - self.used >= cost and self.qualifies(sig)

    def qualifies(self, sig: Signature) -> bool:
        lang, team, skills, _channel = sig
        prof = self.profile
        if lang is not None and lang not in prof.languages:
            return False
        if team is not None and team not in prof.teams:
            return False
        for skill, level in skills:
            if prof.skills.get(skill, 0) < level:
                return False
        return True


@dataclass(slots=True, eq=False)
class WorkState:
    task: Task
    skills: dict[str, int]  # requirements plus accessibility skills
    base_priority: int
    filter: Filter
    team_override: str | None = None
    step: int = 0
    step_version: int = 0
    priority: int = 1
    sig: Signature = (None, None, (), "")
    key: float = 0.0  # queue order: smaller first (age, shifted by priority)...
    order: int = 0  # ...then first come, first served
    version: int = 0  # entries in a queue heap with another version are stale
    queued: bool = False
    offer_agent: int | None = None
    offer_version: int = 0
    declined: set[int] = field(default_factory=set)


def agent_tokens(profile: AgentProfile) -> tuple[Token, ...]:
    langs: list[str | None] = [None, *sorted(profile.languages)]
    skills: list[str | None] = [None, *sorted(profile.skills)]
    return tuple((lang, skill) for lang in langs for skill in skills)


def sig_tokens(sig: Signature) -> list[Token]:
    lang, _team, skills, _channel = sig
    return [(lang, s) for s, _ in skills] if skills else [(lang, None)]


class AgentIndex:
    """Agents bucketed by (language, skill) and team; membership is decided by the caller."""

    def __init__(self) -> None:
        self._by_token: dict[Token, set[int]] = {}
        self._by_team: dict[str, set[int]] = {}
        self._members: set[int] = set()

    def __contains__(self, agent_id: int) -> bool:
        return agent_id in self._members

    def __len__(self) -> int:
        return len(self._members)

    def add(self, agent: AgentState) -> None:
        aid = agent.profile.agent_id
        if aid in self._members:
            return
        self._members.add(aid)
        for token in agent.tokens:
            self._by_token.setdefault(token, set()).add(aid)
        for team in agent.profile.teams:
            self._by_team.setdefault(team, set()).add(aid)

    def discard(self, agent: AgentState) -> None:
        aid = agent.profile.agent_id
        if aid not in self._members:
            return
        self._members.discard(aid)
        for token in agent.tokens:
            self._by_token[token].discard(aid)
        for team in agent.profile.teams:
            self._by_team[team].discard(aid)

    def bucket(self, sig: Signature) -> Iterable[int]:
        """A superset of the members that fit `sig`: its smallest matching bucket."""
        buckets: list[set[int] | frozenset[int]] = [
            self._by_token.get(t, _NONE) for t in sig_tokens(sig)
        ]
        if sig[1] is not None:
            buckets.append(self._by_team.get(sig[1], _NONE))
        return min(buckets, key=len)


class WaitingQueues:
    """One heap per signature of waiting work, found through the agent's tokens."""

    def __init__(self) -> None:
        # read directly by the router's hot loop; entries whose version differs are stale
        self.heaps: dict[Signature, Heap] = {}
        self._by_token: dict[Token, set[Signature]] = {}
        self._stale: dict[Signature, int] = {}
        # heap entries compare (key, order, version): versions are unique, so two entries
        # never tie all the way to the work itself
        self._versions = itertools.count(1)
        self.count = 0

    def push(self, work: WorkState) -> bool:
        """Queue `work` under its signature; True when that signature is new.

        Queues are kept when they empty: the kinds of work are few and recur, and agents
        keep the list of queues they qualify for.
        """
        work.version = next(self._versions)
        new = False
        work.queued = True
        heap = self.heaps.get(work.sig)
        if heap is None:
            heap = self.heaps[work.sig] = []
            new = True
            lang, _team, skills, _ch = work.sig
            token = (lang, skills[0][0] if skills else None)
            self._by_token.setdefault(token, set()).add(work.sig)
        heapq.heappush(heap, (work.key, work.order, work.version, work))
        self.count += 1
        return new

    def remove(self, work: WorkState) -> None:
        """Take `work` out (lazily: its heap entry goes stale)."""
        if work.queued:
            work.queued = False
            work.version = next(self._versions)
            self.count -= 1
            heap = self.heaps.get(work.sig)
            if heap and heap[0][3] is work:
                # The usual case: the head was just chosen. Popping it now spares every agent
                # that looks at this queue next a stale head to step over.
                heapq.heappop(heap)
                return
            stale = self._stale.get(work.sig, 0) + 1
            if heap is not None and stale > 32 and stale * 2 > len(heap):
                # mostly dead entries: rebuild rather than pop them one by one later
                heap[:] = [e for e in heap if e[3].version == e[2] and e[3].queued]
                heapq.heapify(heap)
                stale = 0
            self._stale[work.sig] = stale

    def qualified(self, agent: AgentState) -> list[Signature]:
        """Every known queue the agent qualifies for (budget aside)."""
        found = []
        for token in agent.tokens:
            for sig in self._by_token.get(token, ()):
                if agent.qualifies(sig):
                    found.append(sig)
        return found

    def head(self, sig: Signature, skip: int | None = None) -> WorkState | None:
        """The first live work of `sig` not declined by agent `skip`; drops stale entries."""
        heap = self.heaps.get(sig)
        if heap is None:
            return None
        while heap:
            _key, _seq, version, work = heap[0]
            if work.version != version or not work.queued:
                heapq.heappop(heap)
                if self._stale.get(sig):
                    self._stale[sig] -= 1
                continue
            if skip is None or skip not in work.declined:
                return work
            # declined by this agent: look a little deeper rather than sort the whole queue
            for _k, _s, v, w in heapq.nsmallest(16, heap):
                if w.version == v and w.queued and skip not in w.declined:
                    return w
            return None
        return None

    def all_waiting(self) -> list[WorkState]:
        seen: dict[int, WorkState] = {}
        for heap in self.heaps.values():
            for _k, _s, version, work in heap:
                if work.version == version and work.queued:
                    seen[work.task.id] = work
        return list(seen.values())
