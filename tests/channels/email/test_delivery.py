"""Replies go through the durable outbox: retried while the mail server is down, shown to
the agent when the server refuses them for good."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

from hub.api.keys import STORE
from hub.model import EventKind
from tests.channels.email.conftest import (
    INBOX,
    EmailHub,
    SmtpPeer,
    customer_mail,
    email_settings,
    inbox_options,
)
from tests.channels.email.relay import starttls_login
from tests.support import free_port


async def _conversation(hub: EmailHub) -> int:
    await hub.mail(customer_mail("Is my order on its way?"))
    [conv] = await hub.conversations(channel="email")
    return int(conv["id"])


async def test_a_reply_is_sent_once_the_mail_server_is_back(
    start_email_hub: Any, tmp_path: Path
) -> None:
    peer_port = free_port()
    tries = asyncio.Event()
    hang_ups = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal hang_ups
        hang_ups += 1
        tries.set()
        writer.close()

    # The mail server is down: its port accepts and hangs up before the greeting.
    down = await asyncio.start_server(hang_up, "127.0.0.1", peer_port, reuse_address=True)
    hub: EmailHub = await start_email_hub(
        email_settings(tmp_path, {INBOX: inbox_options(free_port(), peer_port)})
    )
    conv_id = await _conversation(hub)
    reply = await hub.reply(conv_id, "It left our warehouse today.")
    async with asyncio.timeout(10):
        await tries.wait()
    down.close()
    await down.wait_closed()
    detail = await hub.detail(conv_id)
    assert detail["messages"][-1]["delivery_state"] == "queued"  # not lost, not failed

    peer = await SmtpPeer(peer_port).start()  # the server is back
    try:
        received = await peer.next()
        assert received.rcpt_tos == ["alice@example.com"]
        body = received.message.get_body(("plain",))
        assert body is not None and body.get_content().strip() == "It left our warehouse today."
        await hub.settle()
        messages = (await hub.detail(conv_id))["messages"]
        assert [m["delivery_state"] for m in messages if m["id"] == reply["message"]["id"]] == [
            "sent"
        ]
        assert hang_ups >= 1
    finally:
        await peer.stop()


class RefusingPeer(SmtpPeer):
    """A mail server that knows no such recipient (a permanent 5xx answer)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        return "550 5.1.1 no such user here"


async def test_a_refused_reply_fails_for_the_agent_to_see(
    start_email_hub: Any, tmp_path: Path
) -> None:
    peer = await RefusingPeer().start()
    try:
        hub: EmailHub = await start_email_hub(
            email_settings(tmp_path, {INBOX: inbox_options(free_port(), peer.port)})
        )
        conv_id = await _conversation(hub)
        reply = await hub.reply(conv_id, "Here is your answer.")
        await hub.settle()
        [sent] = [
            m for m in (await hub.detail(conv_id))["messages"] if m["id"] == reply["message"]["id"]
        ]
        assert sent["delivery_state"] == "failed"
        events = await hub.app[STORE].read(lambda uow: uow.events(conv_id))
        [failure] = [e for e in events if e.kind is EventKind.MESSAGE_DELIVERY]
        assert "550" in failure.payload["detail"] and "no such user" in failure.payload["detail"]
    finally:
        await peer.stop()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl tool; it is its own CA."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class GuardedPeer(SmtpPeer):
    """A mail server that takes mail only over STARTTLS from an authenticated client."""

    def __init__(self, cert: Path, key: Path):
        super().__init__()
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.logins: list[tuple[bytes, bytes]] = []

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        self.logins.append((data.login, data.password))
        return AuthResult(success=(data.login, data.password) == (b"hub", b"s3cret"))

    async def start(self) -> SmtpPeer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(
                self,
                hostname="peer.test",
                tls_context=self.tls,
                require_starttls=True,
                auth_required=True,
                authenticator=self.authenticate,
            ),
            "127.0.0.1",
            self.port,
        )
        return self


async def test_replies_use_starttls_and_authentication(
    start_email_hub: Any, tmp_path: Path
) -> None:
    cert, key = _self_signed(tmp_path)
    peer = await GuardedPeer(cert, key).start()
    try:
        options = inbox_options(free_port(), peer.port)
        options["smtp"] = starttls_login(peer.port, cert)
        hub: EmailHub = await start_email_hub(email_settings(tmp_path, {INBOX: options}))
        conv_id = await _conversation(hub)
        await hub.reply(conv_id, "Sent over TLS.")
        received = await peer.next()
        assert received.rcpt_tos == ["alice@example.com"]
        assert peer.logins == [(b"hub", b"s3cret")]
    finally:
        await peer.stop()


async def test_a_reply_carries_the_agents_files(
    start_email_hub: Any, smtp_peer: SmtpPeer, tmp_path: Path
) -> None:
    hub: EmailHub = await start_email_hub(
        email_settings(tmp_path, {INBOX: inbox_options(free_port(), smtp_peer.port)})
    )
    conv_id = await _conversation(hub)
    form = aiohttp.FormData(quote_fields=False)
    form.add_field(
        "file", b"order,status\n1234,shipped\n", filename="状态.csv", content_type="text/csv"
    )
    async with hub.agent.http.post(
        hub.agent.base + "/api/attachments", data=form, headers={"X-CSRF-Token": hub.agent.csrf}
    ) as resp:
        assert resp.status == 201, await resp.text()
        uploaded = await resp.json()
    await hub.reply(conv_id, "The status file is attached.", attachments=[uploaded["attachment"]])
    mail = (await smtp_peer.next()).message
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "状态.csv"
    assert part.get_content_type() == "text/csv"
    assert part.get_content() == "order,status\n1234,shipped\n"
    body = mail.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "The status file is attached."
