"""A discrete-event simulator: a traffic profile replayed against a policy and a roster.

Runs the real router on a simulated clock, so what a supervisor compares is what the hub
would do. Offers are accepted at once; handle times start at assignment; a customer whose
patience runs out while waiting hangs up (abandons). Figures are per interval of arrival.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.model import AccessibilityNeed, Priority
from hub.routing.agents import AgentSpec, check_agent
from hub.routing.engine import Router
from hub.routing.policy import PRIORITY_RANK, Policy
from hub.routing.sourcelines import ConfigFileError, parse_source
from hub.routing.tasks import (
    Assigned,
    Decision,
    ManualClock,
    Offered,
    Overflowed,
    Requirements,
    Task,
)

MAX_ARRIVALS = 2_000_000
Level = Annotated[int, Field(ge=1, le=5)]


class ContactKind(BaseModel):
    """One kind of contact in the mix."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight: float = Field(1.0, gt=0)
    inbox: str | None = None  # None: the policy's first inbox
    channel: str = "voice"
    skills: dict[str, Level] = {}
    language: str | None = None
    priority: Priority = Priority.NORMAL
    vip: bool = False
    needs: list[AccessibilityNeed] = []
    aht_s: float = Field(gt=0)  # mean handle time
    handle: Literal["exponential", "fixed"] = "exponential"
    patience_s: float | None = Field(None, gt=0)  # mean (exponential); None: never hangs up


class TrafficSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval_s: float = Field(900, gt=0)
    service_level_s: float = Field(20, ge=0)  # "answered within" for the service level
    intervals: list[Annotated[float, Field(ge=0)]] = Field(min_length=1)  # arrivals each
    mix: list[ContactKind] = Field(min_length=1)
    agents: list[AgentSpec] = Field(min_length=1)
    seed: int = 1


@dataclass(slots=True)
class IntervalReport:
    start_s: float
    offered: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    overflowed: int = 0
    wait_s: float = 0.0  # summed over the answered
    busy_s: float = 0.0  # capacity-weighted handling time falling in the interval
    staffed_s: float = 0.0

    @property
    def service_level(self) -> float | None:
        done = self.answered + self.abandoned + self.overflowed
        return self.answered_in_target / done if done else None

    @property
    def asa_s(self) -> float | None:
        return self.wait_s / self.answered if self.answered else None

    @property
    def abandonment(self) -> float | None:
        done = self.answered + self.abandoned + self.overflowed
        return self.abandoned / done if done else None

    @property
    def occupancy(self) -> float | None:
        return self.busy_s / self.staffed_s if self.staffed_s else None

    def as_dict(self) -> dict[str, float | int | None]:
        def r(x: float | None, n: int = 4) -> float | None:
            return None if x is None else round(x, n)

        return {
            "start_s": self.start_s,
            "offered": self.offered,
            "answered": self.answered,
            "abandoned": self.abandoned,
            "overflowed": self.overflowed,
            "service_level": r(self.service_level),
            "asa_s": r(self.asa_s, 1),
            "abandonment": r(self.abandonment),
            "occupancy": r(self.occupancy),
        }


@dataclass(slots=True)
class SimulationReport:
    intervals: list[IntervalReport]
    total: IntervalReport
    overflow_actions: dict[str, int] = field(default_factory=dict)


def load_traffic(text: str, policy: Policy, source: str = "traffic") -> TrafficSpec:
    """Parse and validate a traffic profile with its roster; errors name the line."""
    doc = parse_source(text, source)
    spec = doc.validated(TrafficSpec)
    problems = []
    if sum(spec.intervals) > MAX_ARRIVALS:
        problems.append(doc.problem(("intervals",), f"more than {MAX_ARRIVALS} arrivals"))
    for i, kind in enumerate(spec.mix):
        for skill in kind.skills:
            if skill not in policy.skills:
                problems.append(
                    doc.problem(("mix", i, "skills", skill), f"unknown skill {skill!r}")
                )
        if kind.inbox is not None and policy.inbox(kind.inbox) is None:
            problems.append(doc.problem(("mix", i, "inbox"), f"no policy for inbox {kind.inbox!r}"))
    for i, agent in enumerate(spec.agents):
        problems.extend(check_agent(agent, policy, doc, ("agents", i)))
    if problems:
        raise ConfigFileError(problems)
    return spec


_ARRIVE, _DONE, _ABANDON, _TIMER = 0, 1, 2, 3


class _Sim:
    def __init__(self, policy: Policy, traffic: TrafficSpec):
        self.traffic = traffic
        self.rng = random.Random(traffic.seed)
        self.clock = ManualClock(0.0)
        self.start = self.clock()
        self.router = Router(policy, self.clock)
        self.events: list[tuple[float, int, int, int]] = []  # at, seq, kind, id
        self.seq = 0
        self.kinds: dict[int, ContactKind] = {}
        self.arrived: dict[int, float] = {}
        self.assigned_at: dict[int, tuple[float, int]] = {}  # task -> (time, agent)
        self.first_inbox = next(iter(policy.inboxes))
        n = len(traffic.intervals)
        self.reports = [IntervalReport(i * traffic.interval_s) for i in range(n)]
        self.overflow_actions: dict[str, int] = {}
        self.capacity = {
            a.id: (a.capacity if a.capacity is not None else policy.capacity)
            for a in traffic.agents
        }
        self.cost = {a.id: a.profile() for a in traffic.agents}
        self.policy = policy

    def push(self, at: float, kind: int, ident: int) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, ident))

    def interval_of(self, at: float) -> IntervalReport | None:
        i = int((at - self.start) // self.traffic.interval_s)
        return self.reports[i] if 0 <= i < len(self.reports) else None

    def schedule_arrivals(self) -> None:
        weights = [k.weight for k in self.traffic.mix]
        task_id = 0
        for i, mean in enumerate(self.traffic.intervals):
            begin = self.start + i * self.traffic.interval_s
            end = begin + self.traffic.interval_s
            if mean <= 0:
                continue
            rate = mean / self.traffic.interval_s
            at = begin + self.rng.expovariate(rate)
            while at < end:  # a Poisson process: exponential gaps
                task_id += 1
                self.kinds[task_id] = self.rng.choices(self.traffic.mix, weights)[0]
                self.push(at, _ARRIVE, task_id)
                at += self.rng.expovariate(rate)

    def run(self) -> SimulationReport:
        for agent in self.traffic.agents:
            self.router.upsert_agent(agent.profile(), agent.presence)
        self.schedule_arrivals()
        while True:
            deadline = self.router.next_deadline()
            upcoming = self.events[0][0] if self.events else math.inf
            if deadline is not None and deadline <= upcoming:
                self.clock.now = max(self.clock.now, deadline)
                self.handle(self.router.tick())
                continue
            if not self.events:
                break
            at, _seq, kind, ident = heapq.heappop(self.events)
            self.clock.now = at
            if kind == _ARRIVE:
                self.arrive(ident)
            elif kind == _DONE:
                self.finish(ident)
            elif kind == _ABANDON and self.router.is_waiting(ident):
                self.handle(self.router.cancel(ident))
                report = self.interval_of(self.arrived[ident])
                if report is not None:
                    report.abandoned += 1
        for agent in self.traffic.agents:
            for report in self.reports:
                report.staffed_s += self.traffic.interval_s if agent.presence == "available" else 0
        return self.summary()

    def arrive(self, task_id: int) -> None:
        kind = self.kinds[task_id]
        now = self.clock()
        self.arrived[task_id] = now
        report = self.interval_of(now)
        if report is not None:
            report.offered += 1
        req = Requirements(
            skills=dict(kind.skills),
            language=kind.language,
            priority=PRIORITY_RANK[kind.priority],
            vip=kind.vip,
            needs=frozenset(kind.needs),
        )
        inbox = kind.inbox or self.first_inbox
        self.handle(self.router.enqueue(Task(task_id, inbox, kind.channel, req, now)))
        if kind.patience_s is not None and self.router.is_waiting(task_id):
            self.push(now + self.rng.expovariate(1 / kind.patience_s), _ABANDON, task_id)

    def handle(self, decisions: Sequence[Decision]) -> None:
        pending = list(decisions)
        while pending:
            d = pending.pop(0)
            if isinstance(d, Offered):
                pending.extend(self.router.accept(d.task_id, d.agent_id))
            elif isinstance(d, Assigned):
                self.answered(d)
            elif isinstance(d, Overflowed):
                self.overflow_actions[d.action] = self.overflow_actions.get(d.action, 0) + 1
                report = self.interval_of(self.arrived.get(d.task_id, self.clock()))
                if report is not None:
                    report.overflowed += 1

    def answered(self, d: Assigned) -> None:
        now = self.clock()
        kind = self.kinds[d.task_id]
        waited = now - self.arrived[d.task_id]
        report = self.interval_of(self.arrived[d.task_id])
        if report is not None:
            report.answered += 1
            report.wait_s += waited
            if waited <= self.traffic.service_level_s:
                report.answered_in_target += 1
        self.assigned_at[d.task_id] = (now, d.agent_id)
        handle = kind.aht_s if kind.handle == "fixed" else self.rng.expovariate(1 / kind.aht_s)
        self.push(now + handle, _DONE, d.task_id)

    def finish(self, task_id: int) -> None:
        began, agent_id = self.assigned_at.pop(task_id)
        cost = self.cost[agent_id].cost(self.policy, self.kinds[task_id].channel)
        share = min(1.0, cost / self.capacity[agent_id]) if self.capacity[agent_id] else 1.0
        self.spread_busy(began, self.clock(), share)
        self.handle(self.router.finish(task_id))

    def spread_busy(self, begin: float, end: float, share: float) -> None:
        width = self.traffic.interval_s
        i = int((begin - self.start) // width)
        while i < len(self.reports):
            lo = self.start + i * width
            hi = lo + width
            overlap = min(end, hi) - max(begin, lo)
            if overlap <= 0:
                break
            self.reports[i].busy_s += overlap * share
            i += 1

    def summary(self) -> SimulationReport:
        total = IntervalReport(0.0)
        for r in self.reports:
            for name in ("offered", "answered", "answered_in_target", "abandoned", "overflowed"):
                setattr(total, name, getattr(total, name) + getattr(r, name))
            total.wait_s += r.wait_s
            total.busy_s += r.busy_s
            total.staffed_s += r.staffed_s
        return SimulationReport(self.reports, total, self.overflow_actions)


def simulate(policy: Policy, traffic: TrafficSpec) -> SimulationReport:
    """Replay `traffic` (with its roster) against `policy`; deterministic for a seed."""
    return _Sim(policy, traffic).run()


def format_report(report: SimulationReport, interval_s: float) -> str:
    """A plain table for the terminal."""
    head = (
        f"{'interval':>9} {'offered':>8} {'answered':>8} {'SL':>6} {'ASA s':>7} "
        f"{'aband.':>6} {'overfl.':>7} {'occup.':>6}"
    )
    lines = [head]

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    for r in [*report.intervals, report.total]:
        label = "total" if r is report.total else _clock_label(r.start_s)
        asa = "-" if r.asa_s is None else f"{r.asa_s:.1f}"
        lines.append(
            f"{label:>9} {r.offered:>8} {r.answered:>8} {pct(r.service_level):>6} {asa:>7} "
            f"{pct(r.abandonment):>6} {r.overflowed:>7} {pct(r.occupancy):>6}"
        )
    if report.overflow_actions:
        lines.append(
            "overflow: " + ", ".join(f"{k} {v}" for k, v in sorted(report.overflow_actions.items()))
        )
    return "\n".join(lines)


def _clock_label(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}" if not math.isinf(seconds) else "-"
