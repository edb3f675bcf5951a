"""A bad email configuration stops start-up with a message naming the setting."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hub.api import create_app
from hub.errors import ConfigError
from tests.channels.email.conftest import INBOX, email_settings, inbox_options
from tests.support import free_port


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"address": "not an address"}, "channels.email.inboxes.support.address"),
        ({"listen": None}, "channels.email.inboxes.support: Value error, set `listen`"),
        (
            {"smtp": {"host": "x", "security": "ssl"}},
            "channels.email.inboxes.support.smtp.security",
        ),
        ({"fax": {"gateways": ["(unclosed"]}}, "channels.email.inboxes.support.fax.gateways"),
        (
            {"fax": {"gateways": ["gw@x"], "number_pattern": r"\d+"}},
            "channels.email.inboxes.support.fax.number_pattern",
        ),
        (
            {"fax": {"gateways": ["gw@x"], "reply_font": "/no/such/font.ttc"}},
            "channels.email.inboxes.support.fax.reply_font",
        ),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, change: dict[str, Any], named: str) -> None:
    options = {**inbox_options(free_port(), free_port()), **change}
    with pytest.raises(ConfigError) as err:
        create_app(email_settings(tmp_path, {INBOX: options}))
    assert named in str(err.value)


async def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = create_app(email_settings(tmp_path, {INBOX: inbox_options(port, free_port())}))
        runner = web.AppRunner(app)
        try:
            with pytest.raises(ConfigError, match=f"listen: cannot listen on 127.0.0.1:{port}"):
                await runner.setup()  # start-up: the channels start here
        finally:
            await runner.cleanup()
