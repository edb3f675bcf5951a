"""IMAP polling of an inbox's mailbox (aioimaplib), with IDLE where the server has it.

Unseen mail is fetched without marking it (BODY.PEEK), stored through the intake, and only
then flagged \\Seen: a crash in between fetches it again, and the hub stores it once (the
Message-ID makes the store idempotent). A mail too large to keep stays in the mailbox; the
agents get its headers with a note saying so. Connection problems are logged and retried with
backoff, forever.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from email import policy
from email.parser import BytesParser

import aioimaplib

from channels.email.options import ImapOptions
from hub.model import Message

log = logging.getLogger(__name__)

Take = Callable[[str, bytes, str | None], Awaitable[Message]]
MAX_BACKOFF = 300.0
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapError(Exception):
    """The server answered a command with NO or BAD."""


class ImapPoller:
    """Keeps one IMAP connection to an inbox's mailbox and feeds its new mail to the hub."""

    def __init__(self, inbox: str, opts: ImapOptions, take: Take, max_bytes: int):
        self.inbox = inbox
        self.opts = opts
        self.take = take
        self.max_bytes = max_bytes
        self.task: asyncio.Task[None] | None = None
        self.client: aioimaplib.IMAP4 | None = None
        self.polls = 0  # completed mailbox scans (for tests and health)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"omnihub-imap-{self.inbox}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        await self._close()

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            try:
                await self._connect()
                backoff = 1.0
                while True:
                    await self.poll_once()
                    await self._wait_for_mail()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server went away, a bad answer: reconnect later
                log.warning(
                    "IMAP %s:%d for inbox %s: %s; reconnecting in %.0f s",
                    self.opts.host,
                    self.opts.port,
                    self.inbox,
                    exc,
                    backoff,
                )
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _connect(self) -> None:
        o = self.opts
        if o.tls:
            client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
                o.host, o.port, timeout=30, ssl_context=ssl.create_default_context()
            )
        else:
            client = aioimaplib.IMAP4(o.host, o.port, timeout=30)
        self.client = client
        await client.wait_hello_from_server()
        _ok(await client.login(o.username, o.password), "LOGIN")
        _ok(await client.select(o.mailbox), f"SELECT {o.mailbox}")

    async def _close(self) -> None:
        client, self.client = self.client, None
        if client is None:
            return
        try:
            if client.has_pending_idle():
                client.idle_done()
            async with asyncio.timeout(5):
                await client.logout()
        except Exception:  # already gone: nothing to close politely
            pass

    async def poll_once(self) -> int:
        """Store every unseen mail; returns how many were stored."""
        assert self.client is not None
        found = _ok(await self.client.uid_search("UNSEEN"), "SEARCH")
        uids = [u for line in found[:1] for u in line.decode().split() if u.isdigit()]
        stored = 0
        for uid in uids:
            size = await self._size(uid)
            if size > self.max_bytes:
                # Too large to keep: the agents get its headers and a note, the mail stays.
                log.warning(
                    "inbox %s: mail UID %s has %d bytes; not fetched", self.inbox, uid, size
                )
                header = await self._fetch(uid, "BODY.PEEK[HEADER]")
                raw = too_large_notice(header, size, self.max_bytes)
            else:
                raw = await self._fetch(uid, "BODY.PEEK[]")
            try:
                await self.take(self.inbox, raw, None)
            except Exception:  # left unseen: tried again next poll, the others go on meanwhile
                log.exception("inbox %s: mail UID %s could not be stored", self.inbox, uid)
                continue
            _ok(await self.client.uid("store", uid, r"+FLAGS (\Seen)"), "STORE")
            stored += 1
        self.polls += 1
        return stored

    async def _size(self, uid: str) -> int:
        assert self.client is not None
        lines = _ok(await self.client.uid("fetch", uid, "(RFC822.SIZE)"), "FETCH SIZE")
        for line in lines:
            if isinstance(line, bytes | bytearray) and (m := _SIZE.search(bytes(line))):
                return int(m.group(1))
        return 0

    async def _fetch(self, uid: str, item: str) -> bytes:
        assert self.client is not None
        lines = _ok(await self.client.uid("fetch", uid, f"({item})"), "FETCH")
        # aioimaplib hands the literal (the message) as the one bytearray among the lines.
        for line in lines:
            if isinstance(line, bytearray):
                return bytes(line)
        raise ImapError(f"FETCH of UID {uid} returned no message")

    async def _wait_for_mail(self) -> None:
        """IDLE until the server announces mail (or re-issue it in time); else sleep."""
        assert self.client is not None
        if not self.client.has_capability("IDLE"):
            await asyncio.sleep(self.opts.poll_seconds)
            return
        idle = await self.client.idle_start(timeout=self.opts.idle_seconds)
        try:
            while self.client.has_pending_idle():
                pushed = await self.client.wait_server_push()
                if pushed == aioimaplib.STOP_WAIT_SERVER_PUSH or any(
                    b"EXISTS" in bytes(p) for p in (pushed if isinstance(pushed, list) else [])
                ):
                    break
        finally:
            if self.client.has_pending_idle():
                self.client.idle_done()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the listener's
            # cancel if IDLE ends in the same loop turn, and stop() would never return.
            async with asyncio.timeout(30):
                await idle


def too_large_notice(header: bytes, size: int, limit: int) -> bytes:
    """A mail of the original's headers saying it was too large to fetch (for the agents)."""
    msg = BytesParser(policy=policy.compat32).parsebytes(header, headersonly=True)
    for name in ("Content-Type", "Content-Transfer-Encoding", "MIME-Version"):
        del msg[name]
    msg["Content-Type"] = "text/plain; charset=utf-8"
    msg.set_payload(
        f"[This mail has {size} bytes, more than the {limit} the hub keeps. It was not fetched "
        "and is still in the mailbox: open it there.]".encode()
    )
    return msg.as_bytes()


def _ok(response: aioimaplib.Response, what: str) -> list[bytes]:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return list(response.lines)
