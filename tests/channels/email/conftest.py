"""The hub with an email inbox, and a real SMTP server (aiosmtpd) that receives its replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient
from aiosmtpd.smtp import SMTP, Envelope, Session

from hub.api import create_app
from hub.api.keys import BOT_RUNNER, OUTBOX
from hub.config import Settings
from tests.support import AGENT_EMAIL, AGENT_PASSWORD, Agent, free_port

INBOX = "support"
ADDRESS = "support@shop.example"


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpPeer:
    """A real SMTP server on loopback standing in for the mail server replies go to."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content or b"")
        assert isinstance(message, EmailMessage)
        self.inbox.put_nowait(Received(envelope.mail_from or "", list(envelope.rcpt_tos), message))
        return "250 OK"

    async def start(self) -> SmtpPeer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SMTP(self, hostname="peer.test"), "127.0.0.1", self.port, reuse_address=True
        )
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def next(self, timeout: float = 15) -> Received:
        async with asyncio.timeout(timeout):
            return await self.inbox.get()


@dataclass
class EmailHub:
    client: TestClient[Any, Any]
    listen_port: int
    agent: Agent

    @property
    def app(self) -> Any:
        return self.client.server.app

    async def mail(self, message: EmailMessage | bytes, sender: str | None = None) -> Any:
        """Send with a real SMTP client to our listener; returns the server's answer.

        `sender` is the envelope sender (MAIL FROM); "" sends the null path `<>`."""
        if isinstance(message, EmailMessage):
            if sender is None:
                sender = message["From"].addresses[0].addr_spec
            message = message.as_bytes(policy=policy.SMTP)
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=self.listen_port, start_tls=False
        ) as smtp:
            return await smtp.sendmail(
                "customer@example.com" if sender is None else sender, [ADDRESS], message
            )

    async def conversations(self, **params: str) -> list[dict[str, Any]]:
        status, body = await self.agent.get("/api/conversations", **params)
        assert status == 200, body
        return list(body["conversations"])

    async def detail(self, conversation_id: int) -> dict[str, Any]:
        status, body = await self.agent.get(f"/api/conversations/{conversation_id}")
        assert status == 200, body
        return dict(body)

    async def reply(self, conversation_id: int, text: str, **extra: Any) -> dict[str, Any]:
        status, body = await self.agent.post(
            f"/api/conversations/{conversation_id}/messages", {"text": text, **extra}
        )
        assert status == 201, body
        return dict(body)

    async def download(self, url: str) -> bytes:
        async with self.agent.http.get(self.agent.base + url) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.read()

    async def settle(self) -> None:
        """Wait until the bot and the outbox have nothing left to do."""
        await self.app[BOT_RUNNER].drain()
        await self.app[OUTBOX].drain()


def inbox_options(listen_port: int, peer_port: int, **extra: Any) -> dict[str, Any]:
    listen = {"host": "127.0.0.1", "port": listen_port, **extra.pop("listen", {})}
    return {
        "address": ADDRESS,
        "display_name": "Shop Support",
        "listen": listen,
        "smtp": {"host": "127.0.0.1", "port": peer_port, "security": "none"},
        **extra,
    }


def email_settings(
    tmp_path: Path,
    inboxes: dict[str, Any],
    database_url: str | None = None,
    **extra: Any,
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "demo": True,
        "bot_enabled": False,
        "log_level": "warning",
        "demo_agent_email": AGENT_EMAIL,
        "demo_agent_password": AGENT_PASSWORD,
        "outbox_retry_seconds": 0.05,
        "channels": {"email": {"inboxes": inboxes}},
    }
    return Settings(**{**values, **extra})


HubFactory = Callable[..., Any]


@pytest.fixture
async def smtp_peer() -> AsyncIterator[SmtpPeer]:
    peer = await SmtpPeer().start()
    yield peer
    await peer.stop()


@pytest.fixture
async def start_email_hub(
    aiohttp_client: Any, agent_http: aiohttp.ClientSession, tmp_path: Path
) -> HubFactory:
    """Builds a hub with `settings` in-process on real sockets and signs the agent in."""

    async def start(settings: Settings) -> EmailHub:
        client: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
        base = str(client.make_url("")).rstrip("/")
        agent = await Agent(agent_http, base).login()
        listen = settings.channels["email"]["inboxes"][INBOX].get("listen") or {"port": 0}
        return EmailHub(client, listen["port"], agent)

    return start


@pytest.fixture
async def email_hub(start_email_hub: HubFactory, smtp_peer: SmtpPeer, tmp_path: Path) -> EmailHub:
    """The hub with one inbox (listener + replies to `smtp_peer`), SQLite, bot off."""
    options = inbox_options(free_port(), smtp_peer.port)
    hub: EmailHub = await start_email_hub(email_settings(tmp_path, {INBOX: options}))
    return hub


def customer_mail(
    body: str,
    subject: str = "Where is my order?",
    sender: str = "Alice Customer <alice@example.com>",
    message_id: str | None = None,
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ADDRESS
    msg["Subject"] = subject
    if message_id:
        msg["Message-ID"] = f"<{message_id}>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg
