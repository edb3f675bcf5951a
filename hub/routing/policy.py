"""The routing policy: what an admin writes (YAML or JSON) and its validated, compiled form.

Per inbox, ordered filters (first match wins), each with ordered escalation steps, in the
manner of Twilio TaskRouter workflows; plus the scoring weights, capacity costs, offer and
wrap-up times, accessibility rules and business hours. Every problem found at load names its
line, so a bad policy never reaches the router.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.channel_names import DEFAULT_COSTS
from hub.model import AccessibilityNeed, Priority
from hub.routing.hours import BusinessHours, HoursSpec
from hub.routing.languages import primary_languages
from hub.routing.sourcelines import ConfigFileError, SourceDocument, parse_source

Level = Annotated[int, Field(ge=1, le=5)]
Seconds = Annotated[float, Field(gt=0)]
Cost = Annotated[int, Field(ge=0)]
PRIORITY_RANK: Mapping[Priority, int] = {p: i for i, p in enumerate(Priority)}
OVERFLOW_ACTIONS = ("voicemail", "leave_message", "callback")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MatchSpec(_Spec):
    """Which conversations a filter takes; every listed condition must hold, none = all."""

    skills: list[str] = []  # any of these skills is required
    languages: list[str] = []  # any of these; "zh-CN" is read as "zh", as agents' are
    needs: list[AccessibilityNeed] = []  # any of these accessibility needs
    channels: list[str] = []
    vip: bool | None = None
    min_priority: Priority | None = None

    @field_validator("languages")
    @classmethod
    def _primary_subtags(cls, value: list[str]) -> list[str]:
        return primary_languages(value)


class StepSpec(_Spec):
    """One escalation step: who may take the conversation for how long."""

    timeout_s: Seconds
    team: str | None = None  # None: the whole pool
    min_level: dict[str, Level] = {}  # overrides the conversation's minimum per skill
    priority: Priority | None = None  # the conversation's priority from this step on
    skip_if_no_agents: bool = False


class FilterSpec(_Spec):
    name: str = Field(min_length=1, max_length=100)
    match: MatchSpec = MatchSpec()
    steps: list[StepSpec] = Field(min_length=1)
    # after the last step: one of OVERFLOW_ACTIONS, or "filter:<name>" to go on with that
    # filter's steps in the same inbox
    overflow: str = "leave_message"


class SlaSpec(_Spec):
    first_response_s: Seconds | None = None
    resolution_s: Seconds | None = None
    warning_fraction: float = Field(0.8, gt=0, lt=1)


class InboxSpec(_Spec):
    filters: list[FilterSpec] = Field(min_length=1)
    hours: HoursSpec | None = None
    sla: dict[Priority, SlaSpec] = {}


class AccessSpec(_Spec):
    """What an accessibility need asks of the agent, and whether it raises the priority."""

    skills: dict[str, Level] = Field(min_length=1)
    min_priority: Priority | None = None


class WeightsSpec(_Spec):
    proficiency: float = Field(1.0, ge=0)
    idle: float = Field(0.5, ge=0)
    occupancy: float = Field(0.5, ge=0)
    preferred: float = Field(2.0, ge=0)


class PolicySpec(_Spec):
    skills: list[str] = Field(min_length=1)
    teams: list[str] = []
    weights: WeightsSpec = WeightsSpec()
    offer_timeout_s: Seconds = 20.0
    wrap_up_s: float = Field(0.0, ge=0)
    preferred_agent_s: float = Field(7 * 86400.0, ge=0)
    aging_s: Seconds = 120.0  # this much waiting counts as one priority level
    vip_boost: int = Field(1, ge=0, le=3)
    capacity: Cost = 100
    costs: dict[str, Cost] = {}
    default_cost: Cost = 35
    accessibility: dict[AccessibilityNeed, AccessSpec] = {}
    inboxes: dict[str, InboxSpec] = Field(min_length=1)  # "*" applies to unlisted inboxes


# --- the compiled form the router reads -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Weights:
    proficiency: float = 1.0
    idle: float = 0.5
    occupancy: float = 0.5
    preferred: float = 2.0


@dataclass(frozen=True, slots=True)
class Step:
    timeout_s: float
    team: str | None
    min_level: Mapping[str, int]
    priority: int | None
    skip_if_no_agents: bool


@dataclass(frozen=True, slots=True)
class Match:
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    needs: frozenset[AccessibilityNeed] = frozenset()
    channels: frozenset[str] = frozenset()
    vip: bool | None = None
    min_priority: int | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    match: Match
    steps: tuple[Step, ...]
    overflow: str  # an OVERFLOW_ACTIONS value (a "filter:" chain is flattened into `steps`)


@dataclass(frozen=True, slots=True)
class Sla:
    first_response_s: float | None
    resolution_s: float | None
    warning_fraction: float


@dataclass(frozen=True, slots=True)
class InboxPolicy:
    filters: tuple[Filter, ...]
    hours: BusinessHours | None
    sla: Mapping[int, Sla]


@dataclass(frozen=True, slots=True)
class AccessRule:
    skills: Mapping[str, int]
    min_priority: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated routing policy; build it with `load_policy` or `compile_policy`."""

    skills: frozenset[str]
    teams: frozenset[str]
    weights: Weights
    offer_timeout_s: float
    wrap_up_s: float
    preferred_agent_s: float
    aging_s: float
    vip_boost: int
    capacity: int
    costs: Mapping[str, int]
    default_cost: int
    accessibility: Mapping[AccessibilityNeed, AccessRule]
    inboxes: Mapping[str, InboxPolicy]

    def inbox(self, name: str) -> InboxPolicy | None:
        return self.inboxes.get(name) or self.inboxes.get("*")

    def cost(self, channel: str) -> int:
        return self.costs.get(channel, self.default_cost)


def load_policy(text: str, source: str = "policy") -> Policy:
    """Parse and validate a policy; ConfigFileError lists every problem with its line."""
    return compile_policy(parse_source(text, source))


def compile_policy(doc: SourceDocument) -> Policy:
    if not isinstance(doc.data, dict):
        raise ConfigFileError(
            [doc.problem((), "a policy is a mapping with `skills` and `inboxes`")]
        )
    spec = doc.validated(PolicySpec)
    problems = _cross_check(spec, doc)
    if problems:
        raise ConfigFileError(problems)
    return Policy(
        skills=frozenset(spec.skills),
        teams=frozenset(spec.teams),
        weights=Weights(**spec.weights.model_dump()),
        offer_timeout_s=spec.offer_timeout_s,
        wrap_up_s=spec.wrap_up_s,
        preferred_agent_s=spec.preferred_agent_s,
        aging_s=spec.aging_s,
        vip_boost=spec.vip_boost,
        capacity=spec.capacity,
        costs={**DEFAULT_COSTS, **spec.costs},
        default_cost=spec.default_cost,
        accessibility={
            need: AccessRule(dict(rule.skills), _rank(rule.min_priority))
            for need, rule in spec.accessibility.items()
        },
        inboxes={name: _compile_inbox(inbox) for name, inbox in spec.inboxes.items()},
    )


def _rank(priority: Priority | None) -> int | None:
    return None if priority is None else PRIORITY_RANK[priority]


def _compile_step(step: StepSpec) -> Step:
    return Step(
        step.timeout_s,
        step.team,
        dict(step.min_level),
        _rank(step.priority),
        step.skip_if_no_agents,
    )


def _compile_inbox(spec: InboxSpec) -> InboxPolicy:
    by_name = {f.name: f for f in spec.filters}
    filters = []
    for flt in spec.filters:
        steps: list[Step] = []
        current: FilterSpec | None = flt
        while current is not None:  # acyclic: checked before compiling
            steps.extend(_compile_step(s) for s in current.steps)
            nxt = current.overflow
            current = by_name[nxt[7:]] if nxt.startswith("filter:") else None
            overflow = nxt
        m = flt.match
        filters.append(
            Filter(
                name=flt.name,
                match=Match(
                    frozenset(m.skills),
                    frozenset(m.languages),
                    frozenset(m.needs),
                    frozenset(m.channels),
                    m.vip,
                    _rank(m.min_priority),
                ),
                steps=tuple(steps),
                overflow=overflow,
            )
        )
    sla = {
        PRIORITY_RANK[p]: Sla(s.first_response_s, s.resolution_s, s.warning_fraction)
        for p, s in spec.sla.items()
    }
    hours = BusinessHours.from_spec(spec.hours) if spec.hours is not None else None
    return InboxPolicy(tuple(filters), hours, sla)


def _cross_check(spec: PolicySpec, doc: SourceDocument) -> list[str]:
    """What pydantic cannot see: names that must refer to declared skills, teams, filters."""
    problems: list[str] = []
    skills, teams = set(spec.skills), set(spec.teams)

    def skill_keys(path: tuple[str | int, ...], names: Any) -> None:
        for name in names:
            if name not in skills:
                problems.append(
                    doc.problem(
                        (*path, name) if isinstance(names, dict) else path,
                        f"unknown skill {name!r} (declared: {', '.join(sorted(skills))})",
                    )
                )

    for need, rule in spec.accessibility.items():
        skill_keys(("accessibility", need.value, "skills"), rule.skills)
    for inbox_name, inbox in spec.inboxes.items():
        base: tuple[str | int, ...] = ("inboxes", inbox_name)
        names = [f.name for f in inbox.filters]
        for i, flt in enumerate(inbox.filters):
            here = (*base, "filters", i)
            if names.index(flt.name) != i:
                problems.append(doc.problem((*here, "name"), f"duplicate filter {flt.name!r}"))
            skill_keys((*here, "match", "skills"), flt.match.skills)
            for j, step in enumerate(flt.steps):
                skill_keys((*here, "steps", j, "min_level"), step.min_level)
                if step.team is not None and step.team not in teams:
                    problems.append(
                        doc.problem((*here, "steps", j, "team"), f"unknown team {step.team!r}")
                    )
            over = flt.overflow
            if over.startswith("filter:"):
                if over[7:] not in names:
                    problems.append(
                        doc.problem(
                            (*here, "overflow"), f"no filter named {over[7:]!r} in this inbox"
                        )
                    )
            elif over not in OVERFLOW_ACTIONS:
                problems.append(
                    doc.problem(
                        (*here, "overflow"),
                        f"{over!r}: use one of {', '.join(OVERFLOW_ACTIONS)} or filter:<name>",
                    )
                )
        problems.extend(_cycles(inbox, base, doc))
    return problems


def _cycles(inbox: InboxSpec, base: tuple[str | int, ...], doc: SourceDocument) -> list[str]:
    """A filter whose overflow chain comes back to itself would escalate forever."""
    nxt = {f.name: f.overflow[7:] for f in inbox.filters if f.overflow.startswith("filter:")}
    index = {f.name: i for i, f in enumerate(inbox.filters)}
    problems = []
    for start in nxt:
        seen = [start]
        name = nxt.get(start)
        while name is not None and name in index:
            if name == start:
                chain = " -> ".join([*seen, name])
                problems.append(
                    doc.problem(
                        (*base, "filters", index[start], "overflow"),
                        f"overflow chain is a cycle: {chain}",
                    )
                )
                break
            if name in seen:
                break  # a cycle that does not pass through `start`: reported from its members
            seen.append(name)
            name = nxt.get(name)
    return problems
