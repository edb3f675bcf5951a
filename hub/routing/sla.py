"""SLA targets of a conversation: when a warning and a breach fall due, in business hours."""

from __future__ import annotations

from dataclasses import dataclass

from hub.routing.policy import Policy

FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


@dataclass(frozen=True, slots=True)
class SlaTarget:
    target: str  # FIRST_RESPONSE or RESOLUTION
    warning_at: float  # epoch seconds
    breach_at: float


def sla_targets(policy: Policy, inbox: str, priority: int, started_at: float) -> list[SlaTarget]:
    """The inbox's targets for this priority, counted from `started_at` in its business hours
    (around the clock when it has none); empty when the inbox sets none."""
    found = policy.inbox(inbox)
    sla = found.sla.get(priority) if found is not None else None
    if found is None or sla is None:
        return []
    hours = found.hours
    out = []
    for target, seconds in ((FIRST_RESPONSE, sla.first_response_s), (RESOLUTION, sla.resolution_s)):
        if seconds is None:
            continue
        if hours is None:
            warning, breach = started_at + seconds * sla.warning_fraction, started_at + seconds
        else:
            warning = hours.add_open_seconds(started_at, seconds * sla.warning_fraction)
            breach = hours.add_open_seconds(started_at, seconds)
        out.append(SlaTarget(target, warning, breach))
    return out
