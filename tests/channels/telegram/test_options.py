"""Bad Telegram settings stop start-up with a message naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hub.api import create_app
from hub.config import Settings
from hub.errors import ConfigError
from tests.channels.telegram.peer import TOKEN

SUPPORT = "channels.telegram.inboxes.support"


def build(tmp_path: Path, telegram: dict[str, Any]) -> None:
    create_app(Settings(data_dir=tmp_path, demo=False, channels={"telegram": telegram}))


@pytest.mark.parametrize(
    ("telegram", "named"),
    [
        ({"inboxes": {"support": {"token": "not-a-token"}}}, f"{SUPPORT}.token"),
        ({"inboxes": {"support": {"token": TOKEN, "mode": "push"}}}, f"{SUPPORT}.mode"),
        (
            {"inboxes": {"support": {"token": TOKEN, "webhook_secret": "short"}}},
            f"{SUPPORT}.webhook_secret",
        ),
        ({"inboxes": {}}, "channels.telegram.inboxes"),
        ({"inboxes": {"support": {"token": TOKEN}}, "typo": 1}, "channels.telegram.typo"),
        ({"inboxes": {"a b": {"token": TOKEN}}}, "channels.telegram.inboxes.a b"),
        ({"inboxes": {"a": {"token": TOKEN}, "b": {"token": TOKEN}}}, "the same bot token"),
    ],
)
def test_bad_options_name_the_setting(tmp_path: Path, telegram: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        build(tmp_path, telegram)


def test_good_options_build(tmp_path: Path) -> None:
    build(tmp_path, {"inboxes": {"support": {"token": TOKEN, "mode": "polling"}}})
