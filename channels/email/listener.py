"""The SMTP listener a mail server relays an inbox's mail to (aiosmtpd, on the hub's loop).

Everything is decided while the sending server is still connected, so nothing is bounced by
us later: a recipient that is not the inbox's gets 550, a sender over its rate gets 450 (the
relay retries later), a mail over the size limit 552, and a mail is answered 250 only once it
is stored. If storing fails the answer is 451 and the relay keeps the mail and retries.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.email.options import InboxOptions, ListenOptions
from hub.errors import ConfigError
from hub.http import TokenBucket
from hub.model import Message

log = logging.getLogger(__name__)

# The name in our greeting; aiosmtpd's default (getfqdn) may wait on DNS at every connection.
HOSTNAME = socket.gethostname()
MAX_TRACKED_SENDERS = 10_000  # rate-limit buckets kept; idle full ones are dropped beyond it
Take = Callable[[str, bytes, str | None], Awaitable[Message]]


class _Handler:
    """aiosmtpd's hooks for one inbox."""

    def __init__(self, inbox: str, opts: InboxOptions, listen: ListenOptions, take: Take):
        self.inbox = inbox
        self.recipients = opts.recipients
        self.listen = listen
        self.take = take
        self.buckets: dict[str, TokenBucket] = {}

    def _allowed(self, sender: str) -> bool:
        if self.listen.rate_per_minute <= 0:
            return True
        bucket = self.buckets.get(sender)
        if bucket is None:
            if len(self.buckets) >= MAX_TRACKED_SENDERS:
                # Forget senders whose bucket has refilled: a new bucket is the same.
                now = time.monotonic()
                self.buckets = {
                    k: b
                    for k, b in self.buckets.items()
                    if b.tokens + (now - b.stamp) * b.rate < b.burst
                }
            bucket = self.buckets[sender] = TokenBucket(
                self.listen.rate_per_minute / 60, self.listen.burst
            )
        return bucket.take()

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # A null sender (bounces) is limited by the connecting host instead.
        key = address.strip("<>").lower() or f"<> from {session.peer[0] if session.peer else '?'}"
        if not self._allowed(key):
            return f"450 4.7.1 Too many messages from {address or '<>'}; try again later"
        envelope.mail_from = address  # "<>" for the null reverse-path (aiosmtpd needs it set)
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() not in self.recipients:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        try:
            sender = "" if envelope.mail_from == "<>" else envelope.mail_from
            stored = await self.take(self.inbox, raw, sender)
        except asyncio.CancelledError:
            raise
        except Exception:  # the relay keeps the mail and retries: nothing is lost
            log.exception("could not store a mail for inbox %s", self.inbox)
            return "451 4.3.0 The message could not be stored; try again later"
        return f"250 2.0.0 Stored as message {stored.id}"


class SmtpListener:
    """One SMTP server per inbox that has `listen` set."""

    def __init__(self, inbox: str, opts: InboxOptions, take: Take, max_bytes: int):
        assert opts.listen is not None
        self.inbox = inbox
        self.listen = opts.listen
        self.handler = _Handler(inbox, opts, opts.listen, take)
        self.max_bytes = min(opts.listen.max_message_bytes, max_bytes)
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful with `port = 0`)."""
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=self.max_bytes,
            enable_SMTPUTF8=True,
            hostname=HOSTNAME,
            ident="omnihub",
            timeout=120,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                self._protocol, self.listen.host, self.listen.port, reuse_address=True
            )
        except OSError as exc:
            raise ConfigError(
                f"channels.email.inboxes.{self.inbox}.listen: cannot listen on "
                f"{self.listen.host}:{self.listen.port}: {exc.strerror or exc}"
            ) from None
        log.info(
            "email inbox %s listens for SMTP on %s:%d", self.inbox, self.listen.host, self.port
        )

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
