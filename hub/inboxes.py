"""Per-inbox rules: whether the front-line bot greets new conversations, the working hours,
what to collect before a hand-off, and which topics always go to a person.

Configured under `bot_inboxes` (OMNIHUB_BOT_INBOXES as JSON, or `[bot_inboxes.NAME]` tables in
the TOML file); pure values, validated at start-up so a bad rule stops the hub with a message.
"""

from __future__ import annotations

import re
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Detail = Literal["name", "email", "phone", "order_number"]
_RULE = re.compile(
    r"^\s*(?P<days>[a-z,\- ]+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


def check_time_zone(name: str) -> str:
    """`name` if it is a time zone this system knows, else ValueError (for validators)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name)") from None
    return name


def _days(spec: str) -> set[int]:
    found: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if part in ("daily", "everyday"):
            return set(range(7))
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"unknown day in {spec!r}; use {', '.join(DAYS)} or daily")
        a, b = DAYS.index(first), DAYS.index(last or first)
        found.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return found


def _clock(text: str) -> time | None:
    """A time of day; None for 24:00 (the end of the day)."""
    hours, minutes = (int(x) for x in text.split(":"))
    if (hours, minutes) == (24, 0):
        return None
    if hours > 23 or minutes > 59:
        raise ValueError(f"{text} is not a time of day")
    return time(hours, minutes)


def parse_hours(rule: str) -> tuple[set[int], time, time | None]:
    """Parse a rule such as "mon-fri 09:00-18:00": (weekdays 0-6, start, end or None)."""
    match = _RULE.match(rule.lower())
    if not match:
        raise ValueError(f"{rule!r}: write rules like 'mon-fri 09:00-18:00' or 'sat 10:00-14:00'")
    start, end = _clock(match["start"]), _clock(match["end"])
    if start is None or (end is not None and end <= start):
        raise ValueError(f"{rule!r}: the end must come after the start on the same day")
    return _days(match["days"]), start, end


class InboxBot(BaseModel):
    """The bot's rules for one inbox; every field has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None  # None: follow OMNIHUB_BOT_ENABLED
    working_hours: list[str] = Field(default_factory=list)  # empty: always open
    timezone: str = "UTC"
    required_details: list[Detail] = Field(default_factory=list)
    human_only_topics: list[str] = Field(default_factory=list)
    csat: bool = True  # ask for a rating after a person resolves the conversation

    @field_validator("working_hours")
    @classmethod
    def _check_hours(cls, rules: list[str]) -> list[str]:
        for rule in rules:
            parse_hours(rule)
        return rules

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, name: str) -> str:
        return check_time_zone(name)

    def is_open(self, now: datetime) -> bool:
        """Whether `now` (aware) falls in the working hours."""
        if not self.working_hours:
            return True
        local = now.astimezone(ZoneInfo(self.timezone))
        clock = local.time().replace(tzinfo=None)
        for rule in self.working_hours:
            days, start, end = parse_hours(rule)
            if local.weekday() in days and start <= clock and (end is None or clock < end):
                return True
        return False

    def hours_text(self) -> str:
        """The hours as configured, for the out-of-hours message."""
        if not self.working_hours:
            return ""
        return "; ".join(self.working_hours) + f" ({self.timezone})"


# The rules of an inbox the configuration does not mention. Built once: bot_rules() is asked on
# every inbound message, and validating a fresh model each time cost 8% of the hub's event loop
# under the web chat benchmark.
DEFAULT_INBOX_BOT = InboxBot()
