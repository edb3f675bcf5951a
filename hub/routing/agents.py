"""Agents as the router sees them: profile (skills, languages, teams, capacity) and presence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.model import AgentRouting, Presence
from hub.routing.languages import primary_languages
from hub.routing.policy import Policy
from hub.routing.sourcelines import ConfigFileError, SourceDocument, parse_source


@dataclass(frozen=True, slots=True)
class AgentProfile:
    """What an admin says an agent can do.

    `capacity` is a budget shared across channels; each conversation costs its channel's
    price (`costs` here, else the policy's: a call 100, a chat 35, an email 20 of 100).
    None means the policy's default.
    """

    agent_id: int
    skills: Mapping[str, int]  # skill -> proficiency 1..5
    languages: frozenset[str] = frozenset()
    teams: frozenset[str] = frozenset()
    capacity: int | None = None
    costs: Mapping[str, int] = field(default_factory=dict)
    wrap_up_s: float | None = None

    def cost(self, policy: Policy, channel: str) -> int:
        return self.costs[channel] if channel in self.costs else policy.cost(channel)


Level = Annotated[int, Field(ge=1, le=5)]


class AgentSpec(BaseModel):
    """One roster entry (also the admin API's body for an agent's routing profile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=1)
    name: str = ""
    skills: dict[str, Level] = Field(min_length=1)
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    teams: list[str] = []
    capacity: int | None = Field(None, ge=0)
    costs: dict[str, Annotated[int, Field(ge=0)]] = {}
    wrap_up_s: float | None = Field(None, ge=0)
    presence: Presence = Presence.AVAILABLE

    @classmethod
    def from_routing(cls, routing: AgentRouting) -> AgentSpec:
        return cls(
            id=routing.agent_id,
            skills=dict(routing.skills),
            languages=list(routing.languages),
            teams=list(routing.teams),
            capacity=routing.capacity,
            costs=dict(routing.costs),
            wrap_up_s=routing.wrap_up_s,
            presence=routing.presence,
        )

    def routing(self) -> AgentRouting:
        return AgentRouting(
            self.id,
            dict(self.skills),
            tuple(self.languages),
            tuple(self.teams),
            self.capacity,
            dict(self.costs),
            self.wrap_up_s,
            self.presence,
        )

    @field_validator("languages")
    @classmethod
    def _primary_subtags(cls, value: list[str]) -> list[str]:
        return primary_languages(value)

    def profile(self) -> AgentProfile:
        return AgentProfile(
            agent_id=self.id,
            skills=dict(self.skills),
            languages=frozenset(self.languages),
            teams=frozenset(self.teams),
            capacity=self.capacity,
            costs=dict(self.costs),
            wrap_up_s=self.wrap_up_s,
        )


class RosterSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    agents: list[AgentSpec] = Field(min_length=1)


def check_agent(
    spec: AgentSpec, policy: Policy, doc: SourceDocument | None, path: tuple[str | int, ...] = ()
) -> list[str]:
    """Problems of one agent against the policy's declared skills and teams."""
    problems = []

    def say(sub: tuple[str | int, ...], message: str) -> None:
        problems.append(doc.problem((*path, *sub), message) if doc else message)

    for skill in spec.skills:
        if skill not in policy.skills:
            say(
                ("skills", skill),
                f"unknown skill {skill!r} (declared: {', '.join(sorted(policy.skills))})",
            )
    for team in spec.teams:
        if team not in policy.teams:
            say(("teams",), f"unknown team {team!r}")
    return problems


def load_roster(text: str, policy: Policy, source: str = "roster") -> list[AgentSpec]:
    """Parse and validate a roster (`agents: [...]`); errors name the line."""
    doc = parse_source(text, source)
    roster = doc.validated(RosterSpec)
    problems = []
    seen: set[int] = set()
    for i, spec in enumerate(roster.agents):
        if spec.id in seen:
            problems.append(doc.problem(("agents", i, "id"), f"duplicate agent id {spec.id}"))
        seen.add(spec.id)
        problems.extend(check_agent(spec, policy, doc, ("agents", i)))
    if problems:
        raise ConfigFileError(problems)
    return list(roster.agents)
