"""Skill-based routing (ACD): the pure engine, its policy, and the supervisor's queueing maths.

No I/O here: `hub.services.router` runs the engine against live conversations, the simulator
runs it against a traffic profile, and `bench/router.py` measures it.
"""

from hub.routing.agents import AgentProfile, AgentSpec, Presence, load_roster
from hub.routing.engine import Router
from hub.routing.policy import PRIORITY_RANK, Policy, load_policy
from hub.routing.sourcelines import ConfigFileError
from hub.routing.tasks import (
    Assigned,
    Candidate,
    Clock,
    Decision,
    Declined,
    ManualClock,
    Offered,
    OfferExpired,
    Overflowed,
    PresenceChanged,
    Queued,
    Requirements,
    Task,
    Why,
    system_clock,
)

__all__ = [
    "PRIORITY_RANK",
    "AgentProfile",
    "AgentSpec",
    "Assigned",
    "Candidate",
    "Clock",
    "ConfigFileError",
    "Decision",
    "Declined",
    "ManualClock",
    "OfferExpired",
    "Offered",
    "Overflowed",
    "Policy",
    "Presence",
    "PresenceChanged",
    "Queued",
    "Requirements",
    "Router",
    "Task",
    "Why",
    "load_policy",
    "load_roster",
    "system_clock",
]
