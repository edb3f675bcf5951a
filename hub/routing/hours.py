"""Business hours and holidays of an inbox, in the inbox's own time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator

from hub.inboxes import check_time_zone

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RANGE = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class HoursSpec(BaseModel):
    """`weekly: {mon: ["09:00-12:00", "13:00-17:00"], ...}`; days not listed are closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str = "UTC"
    weekly: dict[Weekday, list[str]]
    holidays: list[date] = []
    closed: Literal["voicemail", "leave_message", "callback"] = "leave_message"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return check_time_zone(value)

    @field_validator("weekly")
    @classmethod
    def _ranges(cls, value: dict[Weekday, list[str]]) -> dict[Weekday, list[str]]:
        for day, ranges in value.items():
            for text in ranges:
                _parse_range(text, day)
        return value


def _parse_range(text: str, day: str) -> tuple[int, int]:
    m = _RANGE.match(text.strip())
    if not m:
        raise ValueError(f"{day}: {text!r} is not HH:MM-HH:MM")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if not (h1 < 24 and m1 < 60 and h2 <= 24 and m2 < 60 and start < end <= 24 * 60):
        raise ValueError(f"{day}: {text!r} must start before it ends, within one day")
    return start, end


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening minutes per weekday (Monday = 0) and closed dates, in `zone`."""

    zone: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]  # 7 days of (start, end) minute ranges
    holidays: frozenset[date]
    closed_action: str

    @classmethod
    def from_spec(cls, spec: HoursSpec) -> BusinessHours:
        days = tuple(
            tuple(sorted(_parse_range(r, d) for r in spec.weekly.get(d, []))) for d in WEEKDAYS
        )
        return cls(ZoneInfo(spec.timezone), days, frozenset(spec.holidays), spec.closed)

    def is_open(self, at: float) -> bool:
        """Whether the inbox is open at epoch second `at`."""
        local = datetime.fromtimestamp(at, UTC).astimezone(self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute
        return any(s <= minute < e for s, e in self.weekly[local.weekday()])

    def open_seconds(self, start: float, end: float) -> float:
        """Seconds of opening time between two epoch instants (SLAs count business time)."""
        if end <= start:
            return 0.0
        total = 0.0
        day = datetime.fromtimestamp(start, UTC).astimezone(self.zone).date()
        last = datetime.fromtimestamp(end, UTC).astimezone(self.zone).date()
        while day <= last:
            if day not in self.holidays:
                for s, e in self.weekly[day.weekday()]:
                    a = self._instant(day, s)
                    b = self._instant(day, e)
                    total += max(0.0, min(b, end) - max(a, start))
            day += timedelta(days=1)
        return total

    def add_open_seconds(self, start: float, seconds: float) -> float:
        """The instant at which `seconds` of opening time have passed since `start`
        (an SLA due time counted in business hours); inf when the inbox never opens."""
        if seconds <= 0:
            return start
        left = seconds
        day = datetime.fromtimestamp(start, UTC).astimezone(self.zone).date()
        for _ in range(3 * 366):  # a year with no opening at all means never
            if day not in self.holidays:
                for s, e in self.weekly[day.weekday()]:
                    a = max(self._instant(day, s), start)
                    b = self._instant(day, e)
                    if b <= a:
                        continue
                    if b - a >= left:
                        return a + left
                    left -= b - a
            day += timedelta(days=1)
        return float("inf")

    def _instant(self, day: date, minute: int) -> float:
        if minute >= 24 * 60:
            return datetime.combine(day + timedelta(days=1), time(), self.zone).timestamp()
        return datetime.combine(day, time(minute // 60, minute % 60), self.zone).timestamp()
