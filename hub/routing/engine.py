"""The router: pure, clock-driven, no I/O. Feed it events, act on the decisions it returns.

Every public method returns the decisions it caused (offers, escalations, overflows...), in
order. Time moves only through the injected clock; call `tick()` when `next_deadline()` has
passed to fire offer timeouts, escalation steps and the end of wrap-up.

Invariant that keeps it fast: no waiting conversation has an available agent who fits it.
So a conversation looks for an agent when it enters a step, and an agent looks for work when
it gains budget or becomes available; nobody ever scans everything.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from hub.errors import HubError, InvalidTransition, NotFound
from hub.routing.agents import AgentProfile, Presence
from hub.routing.index import (
    AgentIndex,
    AgentState,
    HeapEntry,
    Signature,
    WaitingQueues,
    WorkState,
    agent_tokens,
)
from hub.routing.policy import Filter, Match, Policy
from hub.routing.scoring import score_candidates
from hub.routing.tasks import (
    Assigned,
    Clock,
    Decision,
    Declined,
    Offered,
    OfferExpired,
    Overflowed,
    PresenceChanged,
    Queued,
    Task,
    Why,
)

_STEP, _OFFER, _WRAP = 0, 1, 2


class Router:
    """Skill-based distribution of waiting conversations to agents (see the module doc)."""

    def __init__(self, policy: Policy, clock: Clock):
        self.policy = policy
        self.clock = clock
        self._agents: dict[int, AgentState] = {}
        self._available = AgentIndex()  # presence available and budget left
        self._on_shift = AgentIndex()  # not offline (for skip_if_no_agents)
        self._everyone = AgentIndex()  # to tell agents about a new kind of work
        self._queues = WaitingQueues()
        self._work: dict[int, WorkState] = {}  # waiting or offered
        self._assigned: dict[int, int] = {}  # task id -> agent id
        self._tasks: dict[int, Task] = {}  # every task routed and not finished or cancelled
        self._timers: list[tuple[float, int, int, int, int]] = []  # at, seq, kind, id, version
        self._seq = itertools.count()

    # --- reading --------------------------------------------------------------------------

    @property
    def waiting_count(self) -> int:
        return self._queues.count

    def agent_of(self, task_id: int) -> int | None:
        """The agent a conversation is assigned to (not merely offered)."""
        return self._assigned.get(task_id)

    def presence(self, agent_id: int) -> Presence:
        return self._agent(agent_id).presence

    def used_capacity(self, agent_id: int) -> int:
        return self._agent(agent_id).used

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def offer_of(self, task_id: int) -> int | None:
        """The agent a conversation is on offer to, if any."""
        work = self._work.get(task_id)
        return work.offer_agent if work is not None else None

    def offers_to(self, agent_id: int) -> list[int]:
        """The conversations on offer to an agent now, oldest hold first."""
        agent = self._agents.get(agent_id)
        if agent is None:
            return []
        return [
            task_id
            for task_id in agent.held
            if (work := self._work.get(task_id)) is not None and work.offer_agent == agent_id
        ]

    def profile(self, agent_id: int) -> AgentProfile:
        return self._agent(agent_id).profile

    def agent_ids(self) -> set[int]:
        return set(self._agents)

    def is_waiting(self, task_id: int) -> bool:
        work = self._work.get(task_id)
        return work is not None and work.queued

    def queue_position(self, task_id: int) -> tuple[int, int] | None:
        """A waiting conversation's place in its queue (1 = next) and how many agents on
        shift could take it (for a caller's expected wait); None when it is not waiting."""
        work = self._work.get(task_id)
        if work is None or not work.queued:
            return None
        ahead = sum(
            1
            for key, order, version, other in self._queues.heaps.get(work.sig, ())
            if other.queued and other.version == version and (key, order) < (work.key, work.order)
        )
        serving = sum(
            1 for a in self._on_shift.bucket(work.sig) if self._agents[a].fits(work.sig, 0)
        )
        return ahead + 1, serving

    # --- agents ---------------------------------------------------------------------------

    def upsert_agent(
        self, profile: AgentProfile, presence: Presence | None = None
    ) -> list[Decision]:
        """Add an agent or change its profile; keeps what it holds. Default presence: offline."""
        now = self.clock()
        old = self._agents.get(profile.agent_id)
        if old is not None:
            self._unindex(old)
            self._everyone.discard(old)
        capacity = profile.capacity if profile.capacity is not None else self.policy.capacity
        wrap = profile.wrap_up_s if profile.wrap_up_s is not None else self.policy.wrap_up_s
        agent = AgentState(
            profile=profile,
            capacity=capacity,
            presence=presence or (old.presence if old else Presence.OFFLINE),
            wrap_up_s=wrap,
            last_work_at=old.last_work_at if old else now,
            used=old.used if old else 0,
            held=old.held if old else {},
            acw_version=old.acw_version if old else 0,
            tokens=agent_tokens(profile),
        )
        self._apply_policy(agent)
        agent.eligible = {}
        heaps = self._queues.heaps
        for sig in self._queues.qualified(agent):
            agent.eligible.setdefault(sig[3], []).append((sig, heaps[sig]))
        self._agents[profile.agent_id] = agent
        self._everyone.add(agent)
        self._reindex(agent)
        out: list[Decision] = []
        self._fill(agent, out)
        return out

    def remove_agent(self, agent_id: int) -> list[Decision]:
        """Take an agent out of routing; its offers go back to the queue (assigned stay)."""
        agent = self._agent(agent_id)
        out: list[Decision] = []
        agent.presence = Presence.OFFLINE
        self._unindex(agent)
        for task_id in list(agent.held):
            work = self._work.get(task_id)
            if work is not None and work.offer_agent == agent_id:
                self._withdraw_offer(work, agent)
                self._place(work, out)
        del self._agents[agent_id]
        self._everyone.discard(agent)
        return out

    def set_presence(self, agent_id: int, presence: Presence) -> list[Decision]:
        agent = self._agent(agent_id)
        if presence is Presence.AVAILABLE and agent.presence is not Presence.AVAILABLE:
            agent.last_work_at = max(agent.last_work_at, self.clock())
        agent.presence = presence
        agent.acw_version += 1  # a manual change ends any wrap-up timer
        self._reindex(agent)
        out: list[Decision] = []
        self._fill(agent, out)
        return out

    # --- conversations --------------------------------------------------------------------

    def enqueue(self, task: Task) -> list[Decision]:
        """A conversation needs a human: route it under its inbox's policy."""
        if task.id in self._work or task.id in self._assigned:
            raise InvalidTransition(f"conversation {task.id} is already being routed")
        out: list[Decision] = []
        inbox = self.policy.inbox(task.inbox)
        if inbox is None:
            out.append(Overflowed(task.id, "leave_message", "no_policy"))
            return out
        now = self.clock()
        if inbox.hours is not None and not inbox.hours.is_open(now):
            out.append(Overflowed(task.id, inbox.hours.closed_action, "closed"))
            return out
        work = self._new_work(task)
        if work is None:
            out.append(Overflowed(task.id, "leave_message", "no_policy"))
            return out
        self._work[task.id] = work
        self._tasks[task.id] = task
        self._enter_step(work, 0, out)
        return out

    def cancel(self, task_id: int) -> list[Decision]:
        """The conversation no longer waits (resolved, customer gone): forget it."""
        work = self._work.pop(task_id, None)
        self._tasks.pop(task_id, None)
        out: list[Decision] = []
        if work is None:
            return out
        self._queues.remove(work)
        if work.offer_agent is not None:
            agent = self._agents.get(work.offer_agent)
            if agent is not None:
                self._withdraw_offer(work, agent)
                self._fill(agent, out)
        return out

    def accept(self, task_id: int, agent_id: int) -> list[Decision]:
        work = self._offered_to(task_id, agent_id)
        del self._work[task_id]
        work.offer_agent = None
        self._assigned[task_id] = agent_id
        return [Assigned(task_id, agent_id, self.clock() - work.task.created_at)]

    def decline(self, task_id: int, agent_id: int) -> list[Decision]:
        work = self._offered_to(task_id, agent_id)
        agent = self._agents[agent_id]
        self._withdraw_offer(work, agent)
        work.declined.add(agent_id)
        out: list[Decision] = [Declined(task_id, agent_id)]
        self._place(work, out)
        self._fill(agent, out)
        return out

    def finish(self, task_id: int) -> list[Decision]:
        """The agent is done with the conversation: release its budget, start wrap-up."""
        agent_id = self._assigned.pop(task_id, None)
        self._tasks.pop(task_id, None)
        out: list[Decision] = []
        if agent_id is None or agent_id not in self._agents:
            return out
        agent = self._agents[agent_id]
        self._release(agent, task_id)
        now = self.clock()
        agent.last_work_at = now
        if agent.wrap_up_s > 0 and agent.presence is Presence.AVAILABLE:
            agent.presence = Presence.AFTER_CONTACT_WORK
            agent.acw_version += 1
            self._timer(now + agent.wrap_up_s, _WRAP, agent_id, agent.acw_version)
            out.append(PresenceChanged(agent_id, agent.presence, "wrap_up"))
        self._fill(agent, out)
        return out

    def transfer(
        self, task_id: int, *, agent_id: int | None = None, team: str | None = None
    ) -> list[Decision]:
        """Hand an assigned conversation on: offered to one agent, or routed to a team.

        If the agent does not accept in time, or nobody in the team takes it, the
        conversation carries on under its inbox's policy like any other.
        """
        if (agent_id is None) == (team is None):
            raise HubError("transfer to either an agent or a team", code="invalid_transfer")
        if team is not None and team not in self.policy.teams:
            raise NotFound(f"unknown team {team!r}", code="unknown_team")
        target = self._agent(agent_id) if agent_id is not None else None
        if target is not None and target.presence is Presence.OFFLINE:
            raise HubError(f"agent {agent_id} is offline", code="agent_offline", status=409)
        if task_id not in self._assigned:
            raise InvalidTransition(f"conversation {task_id} is not assigned")
        task = self._tasks[task_id]
        work = self._new_work(task)
        if work is None:
            raise HubError(f"no routing policy takes conversation {task_id}", code="no_policy")
        out: list[Decision] = []
        holder = self._agents.get(self._assigned.pop(task_id))
        if holder is not None:
            self._release(holder, task_id)
            self._reindex(holder)
        work.team_override = team
        self._work[task_id] = work
        if target is not None:
            tid = target.profile.agent_id
            why = Why("transfer", 1, (), tid)
            self._offer(work, target, why, out)
        self._enter_step(work, 0, out)
        if holder is not None:
            self._fill(holder, out)
        return out

    def reassign(self, task_id: int, agent_id: int, task: Task | None = None) -> list[Decision]:
        """A supervisor gives the conversation to an agent, whatever the agent's budget.

        `task` describes a conversation the router has not seen (assigned without queueing).
        """
        target = self._agent(agent_id)
        task = self._tasks.get(task_id) or task
        if task is None:
            raise NotFound(f"conversation {task_id} is not routed", code="unknown_conversation")
        out: list[Decision] = []
        freed: AgentState | None = None
        work = self._work.get(task_id)
        if work is not None:
            freed = self._agents.get(work.offer_agent) if work.offer_agent else None
            self._drop(work)
        elif task_id in self._assigned:
            freed = self._agents.get(self._assigned.pop(task_id))
            if freed is not None:
                self._release(freed, task_id)
                self._reindex(freed)
        cost = target.cost(task.channel)
        target.held[task_id] = cost
        target.used += cost
        target.last_work_at = self.clock()
        self._reindex(target)
        self._assigned[task_id] = agent_id
        self._tasks[task_id] = task
        out.append(Assigned(task_id, agent_id, self.clock() - task.created_at, forced=True))
        if freed is not None and freed is not target:
            self._fill(freed, out)
        return out

    # --- time -----------------------------------------------------------------------------

    def tick(self) -> list[Decision]:
        """Fire every timer that is due."""
        now = self.clock()
        out: list[Decision] = []
        while self._timers and self._timers[0][0] <= now:
            _at, _seq, kind, ident, version = heapq.heappop(self._timers)
            if kind == _STEP:
                work = self._work.get(ident)
                if work is not None and work.step_version == version:
                    self._queues.remove(work)
                    self._enter_step(work, work.step + 1, out)
            elif kind == _OFFER:
                work = self._work.get(ident)
                if work is not None and work.offer_version == version and work.offer_agent:
                    self._expire_offer(work, out)
            else:
                agent = self._agents.get(ident)
                if agent is not None and agent.acw_version == version:
                    agent.presence = Presence.AVAILABLE
                    out.append(PresenceChanged(ident, agent.presence, "wrap_up_done"))
                    self._reindex(agent)
                    self._fill(agent, out)
        return out

    def set_policy(self, policy: Policy) -> list[Decision]:
        """Switch policy; every waiting conversation starts over under it (keeping its age)."""
        self.policy = policy
        out: list[Decision] = []
        for agent in self._agents.values():
            self._apply_policy(agent)
            self._reindex(agent)
        for work in sorted(self._work.values(), key=lambda w: (w.key, w.order)):
            self._queues.remove(work)
            fresh = self._new_work(work.task)
            if fresh is None:
                self._drop(work)
                out.append(Overflowed(work.task.id, "leave_message", "no_policy"))
                continue
            fresh.offer_agent, fresh.offer_version = work.offer_agent, work.offer_version
            fresh.declined, fresh.order = work.declined, work.order
            self._work[work.task.id] = fresh
            self._enter_step(fresh, 0, out)
        return out

    # --- internals ------------------------------------------------------------------------

    def _apply_policy(self, agent: AgentState) -> None:
        """The agent's budget and prices: its own where set, else the policy's."""
        profile, policy = agent.profile, self.policy
        agent.capacity = profile.capacity if profile.capacity is not None else policy.capacity
        agent.costs = {**policy.costs, **profile.costs}
        agent.default_cost = policy.default_cost
        if profile.wrap_up_s is None:
            agent.wrap_up_s = policy.wrap_up_s

    def _agent(self, agent_id: int) -> AgentState:
        agent = self._agents.get(agent_id)
        if agent is None:
            raise NotFound(f"agent {agent_id} is not routed", code="unknown_agent")
        return agent

    def _timer(self, at: float, kind: int, ident: int, version: int) -> None:
        heapq.heappush(self._timers, (at, next(self._seq), kind, ident, version))

    def _new_work(self, task: Task) -> WorkState | None:
        req, policy = task.requirements, self.policy
        inbox = policy.inbox(task.inbox)
        if inbox is None:
            return None
        skills = dict(req.skills)
        priority = req.priority + (policy.vip_boost if req.vip else 0)
        for need in req.needs:
            rule = policy.accessibility.get(need)
            if rule is None:
                continue
            for skill, level in rule.skills.items():
                skills[skill] = max(skills.get(skill, 0), level)
            if rule.min_priority is not None:
                priority = max(priority, rule.min_priority)
        flt = next((f for f in inbox.filters if _matches(f.match, task, skills, priority)), None)
        if flt is None:
            return None
        return WorkState(
            task=task,
            skills=skills,
            base_priority=priority,
            filter=flt,
            priority=priority,
            order=next(self._seq),
        )

    def _signature(self, work: WorkState, step_index: int) -> Signature:
        step = work.filter.steps[step_index]
        skills = dict(work.skills)
        skills.update(step.min_level)
        team = work.team_override or step.team
        return (
            work.task.requirements.language,
            team,
            tuple(sorted(skills.items())),
            work.task.channel,
        )

    def _enter_step(self, work: WorkState, index: int, out: list[Decision]) -> None:
        steps = work.filter.steps
        while index < len(steps):
            step = steps[index]
            sig = self._signature(work, index)
            if step.priority is not None:
                work.priority = step.priority
            if step.skip_if_no_agents and not self._anyone_on_shift(sig):
                out.append(Queued(work.task.id, work.filter.name, index, work.priority, True))
                index += 1
                continue
            work.step, work.sig = index, sig
            work.step_version = next(self._seq)  # unique: no older timer can match
            self._timer(self.clock() + step.timeout_s, _STEP, work.task.id, work.step_version)
            work.key = work.task.created_at - work.priority * self.policy.aging_s
            out.append(Queued(work.task.id, work.filter.name, index, work.priority))
            if work.offer_agent is None:
                self._place(work, out)
            return
        self._drop(work)
        out.append(Overflowed(work.task.id, work.filter.overflow, "timeout"))

    def _drop(self, work: WorkState) -> None:
        self._queues.remove(work)
        self._work.pop(work.task.id, None)
        if work.task.id not in self._assigned:
            self._tasks.pop(work.task.id, None)
        if work.offer_agent is not None and work.offer_agent in self._agents:
            self._withdraw_offer(work, self._agents[work.offer_agent])

    def _anyone_on_shift(self, sig: Signature) -> bool:
        return any(self._agents[a].fits(sig, 0) for a in self._on_shift.bucket(sig))

    def _place(self, work: WorkState, out: list[Decision]) -> None:
        """Offer to the best available agent, or wait in the queue."""
        sig, agents = work.sig, self._agents
        channel = sig[3]
        fitting = []
        for aid in self._available.bucket(sig):
            agent = agents[aid]
            if aid not in work.declined and agent.fits(sig, agent.cost(channel)):
                fitting.append(agent)
        if not fitting:
            if self._queues.push(work):
                pair = (sig, self._queues.heaps[sig])
                for aid in self._everyone.bucket(sig):
                    agent = agents[aid]
                    if agent.qualifies(sig):
                        agent.eligible.setdefault(sig[3], []).append(pair)
            return
        why = score_candidates(
            fitting, sig, self.policy.weights, self._preferred(work), self.clock(), "task"
        )
        self._offer(work, agents[why.chosen], why, out)

    def _preferred(self, work: WorkState) -> int | None:
        req = work.task.requirements
        if req.preferred_agent is None:
            return None
        if self.clock() - req.preferred_since > self.policy.preferred_agent_s:
            return None
        return req.preferred_agent

    def _fill(self, agent: AgentState, out: list[Decision]) -> None:
        """Offer an available agent the most urgent work it fits, while its budget lasts.

        Looks only at the heads of the queues the agent qualifies for, and of those only the
        channels its remaining budget can pay for.
        """
        aid = agent.profile.agent_id
        queues = self._queues
        costs, default_cost = agent.costs, agent.default_cost
        while agent.presence is Presence.AVAILABLE and agent.used < agent.capacity:
            room = agent.capacity - agent.used
            # Heap entries are (key, order, version, work) and orders are unique, so tuple order
            # is queue order. A head that cannot beat the best so far is skipped unchecked: a
            # stale head sorts no later than the live work behind it.
            best_entry: HeapEntry | None = None
            for channel, queued in agent.eligible.items():
                if costs.get(channel, default_cost) > room:
                    continue
                for sig, heap in queued:
                    if not heap:
                        continue
                    entry = heap[0]
                    if best_entry is not None and entry >= best_entry:
                        continue
                    work = entry[3]
                    if work.version != entry[2] or not work.queued or aid in work.declined:
                        found = queues.head(sig, skip=aid)
                        if found is None:
                            continue
                        entry = (found.key, found.order, found.version, found)
                        if best_entry is not None and entry >= best_entry:
                            continue
                    best_entry = entry
            if best_entry is None:
                break
            best = best_entry[3]
            queues.remove(best)
            why = score_candidates(
                [agent], best.sig, self.policy.weights, self._preferred(best), self.clock(), "agent"
            )
            self._offer(best, agent, why, out, reindex=False)
        self._reindex(agent)

    def _offer(
        self,
        work: WorkState,
        agent: AgentState,
        why: Why,
        out: list[Decision],
        *,
        reindex: bool = True,  # _fill reindexes once when it is done
    ) -> None:
        cost = agent.cost(work.task.channel)
        aid = agent.profile.agent_id
        agent.held[work.task.id] = cost
        agent.used += cost
        agent.last_work_at = self.clock()
        if reindex:
            self._reindex(agent)
        work.offer_agent = aid
        work.offer_version = next(self._seq)
        expires = self.clock() + self.policy.offer_timeout_s
        self._timer(expires, _OFFER, work.task.id, work.offer_version)
        out.append(Offered(work.task.id, aid, expires, why))

    def _offered_to(self, task_id: int, agent_id: int) -> WorkState:
        work = self._work.get(task_id)
        if work is None or work.offer_agent != agent_id:
            raise InvalidTransition(
                f"conversation {task_id} is not on offer to agent {agent_id}",
                code="no_such_offer",
            )
        return work

    def _withdraw_offer(self, work: WorkState, agent: AgentState) -> None:
        self._release(agent, work.task.id)
        work.offer_agent = None
        work.offer_version = next(self._seq)
        self._reindex(agent)

    def _expire_offer(self, work: WorkState, out: list[Decision]) -> None:
        aid = work.offer_agent
        assert aid is not None
        agent = self._agents[aid]
        self._withdraw_offer(work, agent)
        out.append(OfferExpired(work.task.id, aid))
        if agent.presence is Presence.AVAILABLE:
            agent.presence = Presence.AWAY  # not at the desk: stop offering it work
            self._reindex(agent)
            out.append(PresenceChanged(aid, agent.presence, "offer_timeout"))
        work.declined.add(aid)
        self._place(work, out)

    def _release(self, agent: AgentState, task_id: int) -> None:
        agent.used -= agent.held.pop(task_id, 0)

    def _reindex(self, agent: AgentState) -> None:
        if agent.presence is Presence.OFFLINE:
            self._on_shift.discard(agent)
        else:
            self._on_shift.add(agent)
        if agent.presence is Presence.AVAILABLE and agent.used < agent.capacity:
            self._available.add(agent)
        else:
            self._available.discard(agent)

    def _unindex(self, agent: AgentState) -> None:
        self._available.discard(agent)
        self._on_shift.discard(agent)


def _matches(m: Match, task: Task, skills: dict[str, int], priority: int) -> bool:
    req = task.requirements
    return (
        (not m.skills or not m.skills.isdisjoint(skills))
        and (not m.languages or req.language in m.languages)
        and (not m.needs or not m.needs.isdisjoint(req.needs))
        and (not m.channels or task.channel in m.channels)
        and (m.vip is None or m.vip == req.vip)
        and (m.min_priority is None or priority >= m.min_priority)
    )


def first_filter(filters: Iterable[Filter], task: Task) -> Filter | None:
    """The filter a task would match with its own skills (for previews and the simulator)."""
    return next(
        (
            f
            for f in filters
            if _matches(f.match, task, dict(task.requirements.skills), task.requirements.priority)
        ),
        None,
    )
