"""A reply the mail server refuses, in the agent inbox: the failed tick, the relay's reason and
a Resend button, live and after a reload. `omnihub serve` with an email inbox whose replies go
to a real SMTP server (aiosmtpd) that answers `550 5.1.1` to the first delivery."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.conftest import LiveHub, start_live_hub
from tests.support import free_port
from tests.web import test_browser as shared
from tests.web.accessibility import assert_accessible

expect = shared.expect

# pytest finds fixtures among module attributes: share the browser ones.
browser = shared.browser
open_page = shared.open_page

ADDRESS = "support@shop.example"
REFUSAL = "550 5.1.1 <alice@example.com>: User unknown"


class Relay:
    """The mail server replies go to: refuses the first recipient it is given, then accepts
    (the address was fixed on its side), keeping what it accepted."""

    def __init__(self) -> None:
        self.refusals = 0
        self.accepted: list[bytes] = []
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if self.refusals == 0:
                self.refusals += 1
                return REFUSAL
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.accepted.append(bytes(envelope.original_content or b""))
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Relay, int]]:
    handler = Relay()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


@pytest.fixture
def mail_hub(tmp_path: Path, relay: tuple[Relay, int]) -> Iterator[tuple[LiveHub, int]]:
    listen = free_port()
    inbox = {
        "address": ADDRESS,
        "display_name": "Shop Support",
        "listen": {"host": "127.0.0.1", "port": listen},
        "smtp": {"host": "127.0.0.1", "port": relay[1], "security": "none"},
    }
    channels = {"email": {"inboxes": {"support": inbox}}}
    proc = start_live_hub(tmp_path, OMNIHUB_CHANNELS=json.dumps(channels))
    try:
        yield LiveHub(proc), listen
    finally:
        proc.stop()


def mail_in(port: int, text: str) -> None:
    """Alice writes to the shop with a real SMTP client."""
    msg = EmailMessage()
    msg["From"] = "Alice Customer <alice@example.com>"
    msg["To"] = ADDRESS
    msg["Subject"] = "Where is my order?"
    msg.set_content(text)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.send_message(msg)


def test_a_refused_reply_shows_why_and_can_be_resent(mail_hub, relay, open_page) -> None:
    hub, listen = mail_hub
    mail_in(listen, "Is my order on its way?")
    agent = open_page()
    shared.sign_in(agent, hub)
    row = agent.get_by_test_id("conversation-row").filter(has_text="Alice Customer")
    row.click()
    agent.get_by_test_id("reply-input").fill("It left our warehouse today.")
    agent.get_by_test_id("reply-input").press("Enter")

    reply = shared.inbox_messages(agent, "agent").filter(has_text="It left our warehouse")
    expect(reply).to_have_attribute("data-state", "failed")  # live, from the delivery event
    expect(reply.get_by_test_id("msg-delivery")).to_have_accessible_name("Not delivered")
    failure = reply.get_by_test_id("msg-failure")
    expect(failure).to_contain_text("Not delivered: ")
    expect(failure).to_contain_text("550 5.1.1 <alice@example.com>: User unknown")
    resend = reply.get_by_test_id("msg-resend")
    expect(resend).to_be_visible()
    assert_accessible(agent)

    # The reason is part of the message (contract 2): a reload shows it too.
    agent.reload()
    row.click()
    expect(reply.get_by_test_id("msg-failure")).to_contain_text("550 5.1.1")

    # The relay takes it now: resent, the failure note goes, the tick says sent.
    reply.get_by_test_id("msg-resend").click()
    expect(reply).to_have_attribute("data-state", "sent")
    expect(reply.get_by_test_id("msg-failure")).to_have_count(0)
    assert len(relay[0].accepted) == 1
    assert b"It left our warehouse today." in relay[0].accepted[0]
