"""The demo shop's team for skill-based routing (`demo_routing`, which `make run` turns on).

Two agents with routing profiles that fit hub/demo/routing.yaml: the demo agent on the shop
floor (English), and a second agent on the China desk and the special-needs team (Chinese and
English, text relay). Profiles are given once: an admin's later changes are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub.config import Settings
from hub.errors import HubError
from hub.model import Presence, Role
from hub.routing.agents import AgentSpec
from hub.services.agents import AgentService
from hub.services.router import RoutingService

log = logging.getLogger(__name__)

POLICY = Path(__file__).resolve().parent / "routing.yaml"
SECOND_AGENT_EMAIL = "lin@demo.omnihub.test"
SECOND_AGENT_NAME = "Lin (demo)"


@dataclass(frozen=True, slots=True)
class Member:
    email: str
    name: str
    role: Role
    profile: dict[str, Any] = field(default_factory=dict)


def members(settings: Settings) -> list[Member]:
    """The demo team; the first is the demo agent `serve` always seeds."""
    return [
        Member(
            settings.demo_agent_email,
            "Demo Agent",
            Role.ADMIN,
            {"skills": {"orders": 4, "payments": 3}, "languages": ["en"], "teams": ["shop-floor"]},
        ),
        Member(
            SECOND_AGENT_EMAIL,
            SECOND_AGENT_NAME,
            Role.AGENT,
            {
                "skills": {"orders": 3, "payments": 2, "text-relay": 4},
                "languages": ["zh-CN", "en"],
                "teams": ["china-desk", "special-needs"],
            },
        ),
    ]


async def seed(settings: Settings, agents: AgentService, routing: RoutingService) -> None:
    """Adds the second demo agent and gives each member without one a routing profile
    (offline: an agent chooses "Available" in the inbox to be offered work)."""
    team = members(settings)
    for member in team[1:]:
        try:
            await agents.add(member.email, member.name, member.role, settings.demo_agent_password)
            log.info("created the demo agent %s", member.email)
        except HubError as exc:
            if exc.code != "agent_exists":
                raise
    profiled = {p["id"] for p in await routing.profiles()}
    emails = [m.email for m in team]
    found = await agents.store.read(lambda uow: [uow.agent_credentials(e) for e in emails])
    for member, credentials in zip(team, found, strict=True):
        if credentials is None or credentials[0].id in profiled:
            continue
        spec = AgentSpec(id=credentials[0].id, presence=Presence.OFFLINE, **member.profile)
        try:
            await routing.save_profile(spec)
        except HubError as exc:  # another policy than the demo's: its skills may differ
            log.warning("no routing profile for the demo agent %s: %s", member.email, exc)
