"""The outbox's retry policy, the way a mail server's queue works: after each failed attempt
wait longer (doubling from `first_retry`, capped at `max_retry`), keep trying until the
message has been queued for `lifetime`, then give up.

Pure: no clock of its own and no I/O; the outbox passes the times in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One channel's retry rules (config: `outbox_retry`, docs/email.md)."""

    first_retry: timedelta
    max_retry: timedelta
    lifetime: timedelta

    def backoff(self, attempts: int) -> timedelta:
        """The wait after `attempts` failed attempts: `first_retry` doubling, at most
        `max_retry`."""
        # In float seconds: a timedelta multiplied up for long outages would overflow.
        doubled = self.first_retry.total_seconds() * 2.0 ** min(max(attempts - 1, 0), 64)
        return timedelta(seconds=min(doubled, self.max_retry.total_seconds()))

    def deadline(self, queued_at: datetime) -> datetime:
        """When a message queued at `queued_at` stops being retried."""
        return queued_at + self.lifetime

    def next_attempt(
        self,
        attempts: int,
        queued_at: datetime,
        now: datetime,
        retry_after: float | None = None,
    ) -> datetime | None:
        """When to try again after the `attempts`-th failure at `now`, or None to give up.

        `retry_after` is the peer's own "come back in N seconds" (Telegram's flood control),
        which replaces the backoff. The last attempt falls on the deadline itself, so a
        message is never failed earlier than its lifetime says."""
        deadline = self.deadline(queued_at)
        if now >= deadline:
            return None
        wait = self.backoff(attempts) if retry_after is None else timedelta(seconds=retry_after)
        return min(now + wait, deadline)


def duration_text(span: timedelta) -> str:
    """A span for people: "2 days", "24 h", "30 min", "0.5 s"."""
    seconds = span.total_seconds()
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {'day' if unit == 'days' and count == 1 else unit}"
    return f"{seconds:g} s"
