"""Erlang C: how many agents a forecast needs, and what service they will give.

The textbook M/M/N queue (Poisson arrivals, exponential handle times, nobody hangs up):
traffic A = arrival rate x average handle time in erlangs; with N > A agents the chance a
contact waits at all is Erlang C, and the wait beyond that is exponential with rate (N-A)/AHT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hub.errors import ValidationFailed

MAX_AGENTS = 100_000


@dataclass(frozen=True, slots=True)
class Staffing:
    agents: int
    traffic_erlangs: float
    probability_wait: float  # share of contacts that wait at all
    service_level: float  # share answered within the target time
    asa_s: float  # average speed of answer over all contacts
    occupancy: float  # share of agent time spent handling


def _check(arrivals_per_hour: float, aht_s: float, target_s: float) -> None:
    if not (arrivals_per_hour > 0 and math.isfinite(arrivals_per_hour)):
        raise ValidationFailed("the arrival rate must be a positive number", code="invalid_rate")
    if not (aht_s > 0 and math.isfinite(aht_s)):
        raise ValidationFailed("the average handle time must be positive", code="invalid_aht")
    if not (target_s >= 0 and math.isfinite(target_s)):
        raise ValidationFailed("the target answer time cannot be negative", code="invalid_target")


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact has to wait; 1.0 when the agents cannot keep up."""
    if agents <= traffic:
        return 1.0
    b = 1.0  # Erlang B by its recurrence: stable where the factorial formula overflows
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


def staffing(arrivals_per_hour: float, aht_s: float, target_s: float, agents: int) -> Staffing:
    """The service `agents` agents give to this traffic."""
    _check(arrivals_per_hour, aht_s, target_s)
    if not 1 <= agents <= MAX_AGENTS:
        raise ValidationFailed(f"agents must be 1..{MAX_AGENTS}", code="invalid_agents")
    traffic = arrivals_per_hour * aht_s / 3600.0
    pw = erlang_c(agents, traffic)
    if agents <= traffic:
        return Staffing(agents, traffic, 1.0, 0.0, math.inf, 1.0)
    spare = agents - traffic
    service_level = 1.0 - pw * math.exp(-spare * target_s / aht_s)
    return Staffing(agents, traffic, pw, service_level, pw * aht_s / spare, traffic / agents)


def agents_needed(
    arrivals_per_hour: float,
    aht_s: float,
    target_s: float,
    service_level: float,
    max_occupancy: float = 1.0,
) -> Staffing:
    """The fewest agents that answer `service_level` of contacts within `target_s`
    (e.g. 0.8 and 20 s for 80/20) without going above `max_occupancy`."""
    _check(arrivals_per_hour, aht_s, target_s)
    if not 0 < service_level < 1:
        raise ValidationFailed(
            "the service level is a fraction between 0 and 1", code="invalid_service_level"
        )
    if not 0 < max_occupancy <= 1:
        raise ValidationFailed("the occupancy cap is a fraction up to 1", code="invalid_occupancy")
    traffic = arrivals_per_hour * aht_s / 3600.0
    n = max(1, math.floor(traffic) + 1)
    while n <= MAX_AGENTS:
        result = staffing(arrivals_per_hour, aht_s, target_s, n)
        if result.service_level >= service_level and result.occupancy <= max_occupancy:
            return result
        n += 1
    raise ValidationFailed(f"more than {MAX_AGENTS} agents needed", code="too_much_traffic")
