"""Work the router distributes, what it needs of an agent, and what the router decides."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from hub.model import AccessibilityNeed


class Clock(Protocol):
    """Epoch seconds; injected so tests and the simulator move time by hand."""

    def __call__(self) -> float: ...


def system_clock() -> float:
    return time.time()


class ManualClock:
    """A clock that moves only when told to (tests, the simulator)."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a conversation needs of an agent, before the policy's steps adjust it."""

    skills: Mapping[str, int] = field(default_factory=dict)  # skill -> minimum level
    language: str | None = None
    priority: int = 1  # PRIORITY_RANK: low 0, normal 1, high 2, urgent 3
    vip: bool = False
    needs: frozenset[AccessibilityNeed] = frozenset()
    preferred_agent: int | None = None  # the last agent who helped this contact...
    preferred_since: float = 0.0  # ...and when; the policy says for how long it counts


@dataclass(frozen=True, slots=True)
class Task:
    """A conversation waiting for a human."""

    id: int  # the conversation id
    inbox: str
    channel: str
    requirements: Requirements = Requirements()
    created_at: float = 0.0  # when it started waiting: the age used for ordering


# --- decisions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidate:
    agent_id: int
    score: float
    proficiency: float  # 0..1
    idle_s: float
    occupancy: float  # 0..1 of the capacity budget in use
    preferred: bool


@dataclass(frozen=True, slots=True)
class Why:
    """Why an agent got an offer: who could have had it and how they scored (best first)."""

    trigger: str  # "task" (a conversation looked for an agent) or "agent" (the reverse)
    candidate_count: int
    candidates: tuple[Candidate, ...]  # the best few
    chosen: int

    def as_dict(self) -> dict[str, object]:
        return {
            "trigger": self.trigger,
            "candidate_count": self.candidate_count,
            "chosen": self.chosen,
            "candidates": [
                {
                    "agent_id": c.agent_id,
                    "score": round(c.score, 4),
                    "proficiency": round(c.proficiency, 3),
                    "idle_s": round(c.idle_s, 1),
                    "occupancy": round(c.occupancy, 3),
                    "preferred": c.preferred,
                }
                for c in self.candidates
            ],
        }


@dataclass(frozen=True, slots=True)
class Queued:
    """The conversation entered (or skipped) an escalation step."""

    task_id: int
    filter: str
    step: int
    priority: int
    skipped: bool = False


@dataclass(frozen=True, slots=True)
class Offered:
    task_id: int
    agent_id: int
    expires_at: float
    why: Why


@dataclass(frozen=True, slots=True)
class OfferExpired:
    """Not accepted in time: the agent was set away and the conversation routed again."""

    task_id: int
    agent_id: int


@dataclass(frozen=True, slots=True)
class Declined:
    task_id: int
    agent_id: int


@dataclass(frozen=True, slots=True)
class Assigned:
    task_id: int
    agent_id: int
    waited_s: float
    forced: bool = False  # a supervisor's reassignment, not an accepted offer


@dataclass(frozen=True, slots=True)
class Overflowed:
    """No agent took it: voicemail, leave_message or callback, as the policy says."""

    task_id: int
    action: str
    reason: str  # "timeout", "closed" (outside business hours), "no_policy"


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    agent_id: int
    presence: str
    reason: str  # "offer_timeout", "wrap_up_done", "wrap_up", "manual" (the agent chose it)


Decision = Queued | Offered | OfferExpired | Declined | Assigned | Overflowed | PresenceChanged
