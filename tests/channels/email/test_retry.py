"""The outbox keeps trying a reply the way a mail server does (issue 18, items 11 and 12).

A real relay (aiosmtpd on loopback) goes through the moods a relay has: down, busy (451),
refusing a recipient (550), up. The schedule is shortened through configuration
(`outbox_retry_seconds`, `outbox_retry`) or time is moved with the outbox's injected clock;
no test waits for a real backoff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from hub.api import create_app
from hub.api.keys import OUTBOX, STORE
from hub.config import Settings
from hub.model import EventKind, utcnow
from hub.storage import SqlStore
from tests.channels.email.conftest import (
    INBOX,
    EmailHub,
    customer_mail,
    email_settings,
    inbox_options,
)
from tests.channels.email.relay import Relay, starttls_login, until
from tests.channels.email.test_delivery import GuardedPeer
from tests.channels.email.test_delivery import _self_signed as self_signed
from tests.support import Agent, free_port, next_frame

OUTBOX_LOG = "hub.services.outbox"
USER_UNKNOWN = "550 5.1.1 <alice@example.com>: User unknown"


async def open_hub(
    aiohttp_client: Any,
    agent_http: aiohttp.ClientSession,
    settings: Settings,
    clock: Callable[[], datetime] | None = None,
) -> EmailHub:
    """The hub in-process on real sockets, its outbox on `clock` when given."""
    app = create_app(settings)
    if clock is not None:
        app[OUTBOX].clock = clock
    client: TestClient[Any, Any] = await aiohttp_client(app)
    agent = await Agent(agent_http, str(client.make_url("")).rstrip("/")).login()
    return EmailHub(client, settings.channels["email"]["inboxes"][INBOX]["listen"]["port"], agent)


def settings_for(
    tmp_path: Path,
    relay: Relay,
    database_url: str | None = None,
    listen: int | None = None,
    **retry: Any,
) -> Settings:
    return email_settings(
        tmp_path,
        {INBOX: inbox_options(listen or free_port(), relay.port)},
        database_url,
        outbox_retry_seconds=0.05,
        outbox_retry={"email": {"max_retry": 0.2, **retry}},
    )


async def conversation(hub: EmailHub) -> int:
    await hub.mail(customer_mail("Is my order on its way?"))
    [conv] = await hub.conversations(channel="email")
    return int(conv["id"])


async def message(hub: EmailHub, conversation_id: int, message_id: int) -> dict[str, Any]:
    [found] = [m for m in (await hub.detail(conversation_id))["messages"] if m["id"] == message_id]
    return found


async def delivery_events(hub: EmailHub, conversation_id: int) -> list[dict[str, Any]]:
    events = await hub.app[STORE].read(lambda uow: uow.events(conversation_id))
    return [dict(e.payload) for e in events if e.kind is EventKind.MESSAGE_DELIVERY]


def delivery_frame(message_id: int, state: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """Matches the live `message.delivery` event of a message (in `state`, when given)."""

    def match(frame: dict[str, Any]) -> bool:
        if frame.get("kind") != "message.delivery":
            return False
        changed = frame["data"]["message"]
        return bool(changed["id"] == message_id and state in (None, changed["delivery_state"]))

    return match


def outbox_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OUTBOX_LOG and r.levelno == level]


async def test_a_reply_outlives_a_relay_outage_and_goes_out_once(
    start_email_hub: Any, tmp_path: Path, database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    relay = await Relay("down").start()
    try:
        hub: EmailHub = await start_email_hub(settings_for(tmp_path, relay, database_url))
        conv_id = await conversation(hub)
        reply = (await hub.reply(conv_id, "It left our warehouse today."))["message"]

        # More attempts than the old outbox made before giving up for good (8).
        await until(lambda: relay.tries["down"] >= 10)
        await relay.set_mood("busy")
        await until(lambda: relay.tries["busy"] >= 2)
        waiting = await message(hub, conv_id, reply["id"])
        assert (waiting["delivery_state"], waiting["delivery_error"]) == ("queued", None)

        await relay.set_mood("up")
        received = await relay.next()
        body = received.message.get_body(("plain",))
        assert body is not None and body.get_content().strip() == "It left our warehouse today."
        await hub.settle()
        sent = await message(hub, conv_id, reply["id"])
        assert (sent["delivery_state"], sent["delivery_error"]) == ("sent", None)
        assert relay.inbox.empty(), "the reply went out twice"
        states = [e["message"]["delivery_state"] for e in await delivery_events(hub, conv_id)]
        assert states == ["sent"], "the reply was marked something else on the way"

        warnings = outbox_records(caplog, logging.WARNING)
        assert len(warnings) >= 12
        assert all(f"message {reply['id']} (conversation {conv_id}, email)" in w for w in warnings)
        assert any("451" in w and "Please try again later" in w for w in warnings)
        assert not outbox_records(caplog, logging.ERROR)
    finally:
        await relay.stop()


async def test_an_unknown_recipient_fails_at_once_with_the_relays_words(
    start_email_hub: Any, tmp_path: Path, database_url: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    relay = await Relay("refusing").start()
    try:
        hub: EmailHub = await start_email_hub(settings_for(tmp_path, relay, database_url))
        conv_id = await conversation(hub)
        events = await hub.agent.events()
        try:
            reply = (await hub.reply(conv_id, "Here is your answer."))["message"]
            live = await next_frame(events, delivery_frame(reply["id"]))
        finally:
            await events.close()
        await hub.settle()

        assert live["data"]["message"]["delivery_state"] == "failed"
        assert USER_UNKNOWN in live["data"]["message"]["delivery_error"]
        failed = await message(hub, conv_id, reply["id"])
        assert failed["delivery_state"] == "failed"
        assert USER_UNKNOWN in failed["delivery_error"]
        [summary] = await hub.conversations(channel="email")
        assert summary["last_message"]["delivery_error"] == failed["delivery_error"]
        assert relay.tries["refusing"] == 1, "a permanent refusal was retried"

        [error] = outbox_records(caplog, logging.ERROR)
        assert f"message {reply['id']} (conversation {conv_id}, email)" in error
        assert USER_UNKNOWN in error
    finally:
        await relay.stop()


async def test_a_reply_fails_with_the_reason_when_its_lifetime_ends(
    start_email_hub: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    relay = await Relay("down").start()
    try:
        hub: EmailHub = await start_email_hub(settings_for(tmp_path, relay, lifetime=0.5))
        conv_id = await conversation(hub)
        reply = (await hub.reply(conv_id, "We will call you back."))["message"]

        async def failed() -> bool:
            return (await message(hub, conv_id, reply["id"]))["delivery_state"] == "failed"

        await until(failed)
        reason = (await message(hub, conv_id, reply["id"]))["delivery_error"]
        assert reason.startswith("gave up after "), reason
        assert " attempts in 0.5 s: SMTP server 127.0.0.1:" in reason
        assert "unreachable" in reason
        assert relay.tries["down"] >= 2
        [error] = outbox_records(caplog, logging.ERROR)
        assert reason in error and f"conversation {conv_id}" in error
    finally:
        await relay.stop()


async def test_an_agent_resends_a_failed_reply(
    start_email_hub: Any, tmp_path: Path, database_url: str | None
) -> None:
    relay = await Relay("refusing").start()
    try:
        hub: EmailHub = await start_email_hub(settings_for(tmp_path, relay, database_url))
        conv_id = await conversation(hub)
        reply = (await hub.reply(conv_id, "Your refund is on its way."))["message"]
        await hub.settle()
        assert (await message(hub, conv_id, reply["id"]))["delivery_state"] == "failed"

        relay.mood = "up"  # the customer's mailbox exists again
        path = f"/api/conversations/{conv_id}/messages/{reply['id']}/resend"
        async with hub.agent.http.post(hub.agent.base + path, json={}) as resp:
            assert resp.status == 403  # no CSRF header
            assert (await resp.json())["error"]["code"] == "csrf_failed"
        events = await hub.agent.events()
        try:
            status, body = await hub.agent.post(path)
            assert status == 202, body
            assert body["message"]["id"] == reply["id"]
            assert (body["message"]["delivery_state"], body["message"]["delivery_error"]) == (
                "queued",
                None,
            )
            await next_frame(events, delivery_frame(reply["id"], "queued"))
            received = await relay.next()
            await next_frame(events, delivery_frame(reply["id"], "sent"))
        finally:
            await events.close()
        body_part = received.message.get_body(("plain",))
        assert body_part is not None
        assert body_part.get_content().strip() == "Your refund is on its way."
        await hub.settle()
        assert (await message(hub, conv_id, reply["id"]))["delivery_state"] == "sent"

        status, body = await hub.agent.post(path)  # sent now: nothing to resend
        assert (status, body["error"]["code"]) == (409, "not_failed")
        customer_id = (await hub.detail(conv_id))["messages"][0]["id"]
        status, body = await hub.agent.post(
            f"/api/conversations/{conv_id}/messages/{customer_id}/resend"
        )
        assert (status, body["error"]["code"]) == (409, "not_failed")
        for bad in (f"{conv_id}/messages/999999", f"{conv_id + 1}/messages/{reply['id']}"):
            status, body = await hub.agent.post(f"/api/conversations/{bad}/resend")
            assert (status, body["error"]["code"]) == (404, "unknown_message"), bad
        status, body = await hub.agent.post(f"/api/conversations/{conv_id}/messages/x/resend")
        assert (status, body["error"]["code"]) == (400, "invalid_request")
        assert relay.inbox.empty()
    finally:
        await relay.stop()


async def test_a_restart_resumes_the_backoff_where_it_stood(
    aiohttp_client: Any,
    agent_http: aiohttp.ClientSession,
    tmp_path: Path,
    database_url: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    relay = await Relay("down").start()
    try:
        settings = settings_for(tmp_path, relay, database_url)
        first = await open_hub(aiohttp_client, agent_http, settings)
        conv_id = await conversation(first)
        reply = (await first.reply(conv_id, "Back in stock tomorrow."))["message"]

        await until(lambda: relay.tries["down"] >= 3)
        await first.client.close()  # stopped mid-backoff: the reply stays queued
        before = await stored_attempts(settings)
        assert before >= 2
        caplog.clear()

        await relay.set_mood("busy")
        second = await open_hub(aiohttp_client, agent_http, settings)
        await until(lambda: relay.tries["busy"] >= 1)
        await relay.set_mood("up")
        await relay.next()
        await second.settle()
        assert (await message(second, conv_id, reply["id"]))["delivery_state"] == "sent"
        retried = outbox_records(caplog, logging.WARNING)
        assert retried and f"attempt {before + 1}:" in retried[0], (before, retried)
        assert relay.inbox.empty()
    finally:
        await relay.stop()


async def stored_attempts(settings: Settings) -> int:
    """The failed attempts stored for queued replies, read with a store of our own."""
    store = SqlStore.from_url(settings.effective_database_url, 1, writer_process=False)
    await store.start()
    try:
        pending = await store.read(lambda uow: uow.pending_sends())
    finally:
        await store.close()
    return sum(p.schedule.attempts for p in pending if p.schedule is not None)


async def test_a_reply_whose_lifetime_ran_out_while_the_hub_was_down_fails_on_start(
    aiohttp_client: Any,
    agent_http: aiohttp.ClientSession,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=OUTBOX_LOG)
    relay = await Relay("down").start()
    try:
        settings = settings_for(tmp_path, relay)  # email's default lifetime: 2 days
        first = await open_hub(aiohttp_client, agent_http, settings)
        conv_id = await conversation(first)
        reply = (await first.reply(conv_id, "See you soon."))["message"]
        await until(lambda: relay.tries["down"] >= 2)
        await first.client.close()
        tries = relay.tries["down"]

        # Started again three days later (the outbox's clock): too late to send it at all.
        later = await open_hub(
            aiohttp_client, agent_http, settings, clock=lambda: utcnow() + timedelta(days=3)
        )
        await later.settle()
        failed = await message(later, conv_id, reply["id"])
        assert failed["delivery_state"] == "failed"
        reason = failed["delivery_error"]
        assert reason.startswith("not sent within 2 days: the time ran out while the hub was"), (
            reason
        )
        assert "last error: SMTP server 127.0.0.1:" in reason
        assert relay.tries["down"] == tries, "an expired reply was tried again"
        assert any(reason in e for e in outbox_records(caplog, logging.ERROR))
    finally:
        await relay.stop()


class LockedAccountPeer(GuardedPeer):
    """A relay that refuses the hub's login (535) until its admin unlocks the account."""

    def __init__(self, cert: Path, key: Path):
        super().__init__(cert, key)
        self.locked = True

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append((data.login, data.password))
        # handled=False: aiosmtpd answers the refusal itself (535 5.7.8).
        return AuthResult(success=not self.locked, handled=not self.locked)


async def test_a_refused_login_is_retried_until_the_account_works(
    start_email_hub: Any, tmp_path: Path
) -> None:
    """Our own credentials, not the reply, are at fault: like Postfix, keep the mail queued."""
    cert, key = self_signed(tmp_path)
    peer = LockedAccountPeer(cert, key)
    await peer.start()
    try:
        options = inbox_options(free_port(), peer.port)
        options["smtp"] = starttls_login(peer.port, cert)
        settings = email_settings(
            tmp_path, {INBOX: options}, outbox_retry={"email": {"max_retry": 0.2}}
        )
        hub: EmailHub = await start_email_hub(settings)
        conv_id = await conversation(hub)
        reply = (await hub.reply(conv_id, "Your parcel is at the depot."))["message"]
        await until(lambda: len(peer.logins) >= 2)
        assert (await message(hub, conv_id, reply["id"]))["delivery_state"] == "queued"
        peer.locked = False
        received = await peer.next()
        assert received.rcpt_tos == ["alice@example.com"]
        await hub.settle()
        assert (await message(hub, conv_id, reply["id"]))["delivery_state"] == "sent"
    finally:
        await peer.stop()


class Clock:
    """The outbox's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def test_the_default_email_schedule_keeps_trying_for_two_days(
    aiohttp_client: Any, agent_http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """The real defaults (first retry 1 s, at most 30 min apart, 2 days), with the clock moved
    from one due retry to the next against a relay that stays down."""
    relay = await Relay("down").start()
    try:
        settings = email_settings(
            tmp_path, {INBOX: inbox_options(free_port(), relay.port)}, outbox_retry_seconds=1
        )
        clock = Clock()
        hub = await open_hub(aiohttp_client, agent_http, settings, clock=clock)
        conv_id = await conversation(hub)
        reply = (await hub.reply(conv_id, "Your order ships Monday."))["message"]
        outbox = hub.app[OUTBOX]
        await hub.settle()
        waits = []
        while (due := outbox.next_due()) is not None:
            waits.append((due - clock.now).total_seconds())
            clock.now = due
            assert outbox.start_due() == 1
            await hub.settle()

        # Retried up to the deadline itself (not failed on the way: no retry would be due).
        assert waits[:4] == [1, 2, 4, 8]
        assert max(waits) == 1800
        assert clock.now == reply_time(reply) + timedelta(days=2)
        failed = await message(hub, conv_id, reply["id"])
        assert failed["delivery_state"] == "failed"
        assert failed["delivery_error"].startswith(
            f"gave up after {len(waits) + 1} attempts in 2 days: SMTP server 127.0.0.1:"
        )
        assert relay.tries["down"] == len(waits) + 1
    finally:
        await relay.stop()


def reply_time(reply: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(reply["created_at"])
