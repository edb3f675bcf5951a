"""IMAP polling against a real dovecot: mail delivered to the mailbox reaches the hub, is
flagged seen only once stored, and arrives promptly through IDLE."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from hub.api.keys import OUTBOX
from tests.channels.email.conftest import (
    INBOX,
    EmailHub,
    SmtpPeer,
    customer_mail,
    email_settings,
)
from tests.channels.email.dovecot import Dovecot
from tests.support import next_frame


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot().start()
    try:
        yield server
    finally:
        server.stop()


async def _until_stored(hub: EmailHub, events: Any, count: int) -> None:
    """Until `count` conversations have a message (each new one announces itself)."""
    async with asyncio.timeout(20):
        while True:
            convs = await hub.conversations(channel="email")
            if sum(c["last_message_at"] is not None for c in convs) >= count:
                return
            await next_frame(events, lambda f: f.get("kind") == "message.created")


async def test_mail_in_the_mailbox_reaches_the_hub(
    start_email_hub: Any, smtp_peer: SmtpPeer, dovecot: Dovecot, tmp_path: Path
) -> None:
    # Mail that was waiting before the hub started, then mail that arrives while it idles.
    before = customer_mail("Waiting since yesterday", message_id="old@example.com")
    dovecot.deliver(before.as_bytes(policy=policy.SMTP))
    options = {
        "address": "support@shop.example",
        "imap": {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "tls": False,
            "username": dovecot.user,
            "password": dovecot.password,
        },
        "smtp": {"host": "127.0.0.1", "port": smtp_peer.port, "security": "none"},
    }
    settings = email_settings(tmp_path, {INBOX: options})
    hub: EmailHub = await start_email_hub(settings)

    events = await hub.agent.events()
    await _until_stored(hub, events, 1)
    poller = hub.app[OUTBOX].channels["email"].pollers[INBOX]
    assert poller.client is not None and poller.client.has_capability("IDLE")

    later = customer_mail(
        "A new question",
        subject="Refund",
        message_id="new@example.com",
        sender="Bob <bob@example.com>",
    )
    await asyncio.to_thread(dovecot.deliver, later.as_bytes(policy=policy.SMTP))
    await _until_stored(hub, events, 2)
    convs = await hub.conversations(channel="email")
    texts = sorted([(await hub.detail(c["id"]))["messages"][0]["text"] for c in convs])
    assert texts == ["Refund\n\nA new question", "Where is my order?\n\nWaiting since yesterday"]
    assert await asyncio.to_thread(dovecot.unseen) == 0  # flagged only after being stored

    # The agent's reply to IMAP-fetched mail goes out through SMTP, threaded.
    bob = next(c for c in convs if c["contact"]["display_name"] == "Bob")
    await hub.reply(bob["id"], "Your refund is on its way.")
    sent = (await smtp_peer.next()).message
    assert sent["In-Reply-To"] == "<new@example.com>" and sent["To"] == "bob@example.com"
    await events.close()


async def test_a_mail_too_large_to_keep_is_announced_not_fetched(
    start_email_hub: Any, smtp_peer: SmtpPeer, dovecot: Dovecot, tmp_path: Path
) -> None:
    big = customer_mail("x" * 4000 + "\n", subject="Scans", message_id="big@example.com")
    dovecot.deliver(big.as_bytes(policy=policy.SMTP))
    options = {
        "address": "support@shop.example",
        "imap": {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "tls": False,
            "username": dovecot.user,
            "password": dovecot.password,
        },
    }
    hub: EmailHub = await start_email_hub(
        email_settings(tmp_path, {INBOX: options}, max_attachment_bytes=2048)
    )
    events = await hub.agent.events()
    await _until_stored(hub, events, 1)
    [conv] = await hub.conversations(channel="email")
    [message] = (await hub.detail(conv["id"]))["messages"]
    assert message["text"].startswith("Scans\n\n[This mail has ")
    assert "still in the mailbox" in message["text"]
    assert conv["contact"]["display_name"] == "Alice Customer"
    await events.close()
