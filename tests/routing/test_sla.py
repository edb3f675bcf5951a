"""SLA due times, counted in the inbox's business hours."""

from __future__ import annotations

from hub.model import Priority
from hub.routing import PRIORITY_RANK
from hub.routing.sla import sla_targets
from tests.routing.support import POLICY, policy

MONDAY_9 = 1795395600.0  # Monday 2026-11-23 09:00 in Shanghai
HOURS = (
    "  support:\n"
    "    hours:\n"
    "      timezone: Asia/Shanghai\n"
    "      weekly: {mon: ['09:00-18:00'], tue: ['09:00-18:00'], wed: ['09:00-18:00']}\n"
    "      holidays: [2026-11-24]\n"
    "    sla:\n"
    "      high: {first_response_s: 7200, resolution_s: 36000, warning_fraction: 0.5}\n"
)


def test_targets_count_business_hours_and_skip_holidays() -> None:
    loaded = policy(POLICY.replace("  support:\n", HOURS))
    start = MONDAY_9 + 8 * 3600  # Monday 17:00: one open hour left that day
    first, resolution = sla_targets(loaded, "support", PRIORITY_RANK[Priority.HIGH], start)
    assert first.target == "first_response"
    assert first.warning_at == start + 3600  # the last hour on Monday
    # the second hour: Tuesday is a holiday, so Wednesday 10:00
    assert first.breach_at == MONDAY_9 + 2 * 86400 + 3600
    assert resolution.breach_at == MONDAY_9 + 2 * 86400 + 9 * 3600  # 1 h Mon + 9 h Wed
    assert sla_targets(loaded, "support", PRIORITY_RANK[Priority.NORMAL], start) == []


def test_targets_without_hours_run_around_the_clock() -> None:
    loaded = policy(
        POLICY.replace("  support:\n", "  support:\n    sla: {normal: {first_response_s: 60}}\n")
    )
    [first] = sla_targets(loaded, "support", PRIORITY_RANK[Priority.NORMAL], 1000.0)
    assert (first.warning_at, first.breach_at) == (1048.0, 1060.0)
