"""The outbox's retry policy (a mail server's queue rules) and its per-channel configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.api import create_app
from hub.config import Settings, load_settings
from hub.errors import ConfigError
from hub.services.retry import RetryPolicy, duration_text

QUEUED = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
EMAIL = RetryPolicy(timedelta(seconds=1), timedelta(minutes=30), timedelta(days=2))


def test_waits_double_up_to_the_cap() -> None:
    waits = [EMAIL.backoff(n).total_seconds() for n in range(1, 14)]
    assert waits[:5] == [1, 2, 4, 8, 16]
    assert waits[-2:] == [1800, 1800]
    assert EMAIL.backoff(10_000) == timedelta(minutes=30)  # a week-long outage: no overflow


def test_a_mail_is_tried_for_its_whole_lifetime_then_given_up() -> None:
    """Walk the schedule of a relay that never answers: retried for two days, every 30 min
    at the end, the last attempt on the deadline itself, then no further attempt."""
    now, attempts = QUEUED, 0
    while (at := EMAIL.next_attempt(attempts + 1, QUEUED, now)) is not None:
        assert at > now
        now, attempts = at, attempts + 1
    assert now == QUEUED + timedelta(days=2)
    assert 2 * 48 < attempts < 2 * 48 + 20  # about two a hour once at the cap


def test_the_peers_retry_after_replaces_the_backoff_but_not_the_deadline() -> None:
    now = QUEUED + timedelta(minutes=5)
    assert EMAIL.next_attempt(1, QUEUED, now, retry_after=42) == now + timedelta(seconds=42)
    late = QUEUED + timedelta(days=2) - timedelta(seconds=10)
    assert EMAIL.next_attempt(9, QUEUED, late, retry_after=3600) == QUEUED + timedelta(days=2)
    assert EMAIL.next_attempt(9, QUEUED, QUEUED + timedelta(days=2)) is None


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(days=2), "2 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=36), "36 h"),
        (timedelta(minutes=30), "30 min"),
        (timedelta(seconds=0.5), "0.5 s"),
    ],
)
def test_durations_read_as_people_say_them(span: timedelta, text: str) -> None:
    assert duration_text(span) == text


def test_each_channel_has_its_default_and_configured_rows_override_field_by_field() -> None:
    defaults = Settings()
    email, telegram = defaults.outbox_retry_rule("email"), defaults.outbox_retry_rule("telegram")
    assert (email.lifetime, telegram.lifetime) == (timedelta(days=2), timedelta(hours=24))
    assert email.max_retry == telegram.max_retry == timedelta(minutes=30)
    assert email.first_retry == timedelta(seconds=1)  # outbox_retry_seconds
    assert defaults.outbox_retry_rule("fax").lifetime == timedelta(days=2)
    assert defaults.outbox_retry_rule("voice").lifetime == timedelta(hours=24)  # "*"

    tuned = Settings.model_validate(
        {
            "outbox_retry_seconds": 5,
            "outbox_retry": {"*": {"max_retry": 600}, "email": {"lifetime": "P5D"}},
        }
    )
    email = tuned.outbox_retry_rule("email")
    assert (email.first_retry, email.max_retry, email.lifetime) == (
        timedelta(seconds=5),
        timedelta(minutes=10),
        timedelta(days=5),
    )
    assert tuned.outbox_retry_rule("telegram").lifetime == timedelta(hours=24)


def test_the_table_comes_from_the_environment_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIHUB_OUTBOX_RETRY", '{"telegram": {"lifetime": 0.25}}')
    rule = load_settings().outbox_retry_rule("telegram")
    assert rule.lifetime == timedelta(seconds=0.25)


@pytest.mark.parametrize(
    "table",
    [
        '{"email": {"lifetime": 0}}',
        '{"email": {"lifetime": "soon"}}',
        '{"email": {"lifetme": 60}}',
    ],
)
def test_a_bad_row_stops_start_up_naming_it(monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    monkeypatch.setenv("OMNIHUB_OUTBOX_RETRY", table)
    with pytest.raises(ConfigError, match=r"outbox_retry\.email"):
        load_settings()


def test_a_row_for_an_unknown_channel_stops_start_up(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {"data_dir": tmp_path, "outbox_retry": {"emial": {"lifetime": 60}}}
    )
    with pytest.raises(ConfigError, match=r"OMNIHUB_OUTBOX_RETRY.*unknown channel emial"):
        create_app(settings)
