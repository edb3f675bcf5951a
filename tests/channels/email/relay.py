"""A relay for the hub's replies that goes through the moods of a real one (down, busy,
refusing, up) on one port: aiosmtpd behind a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.channels.email.conftest import SmtpPeer


class Relay(SmtpPeer):
    """The relay replies go to, on one port, in one of its moods: `down` (the port takes the
    connection and hangs up before the greeting), `busy` (451 to RCPT), `refusing` (550, the
    recipient is unknown) or `up` (takes the mail). `tries` counts the attempts per mood."""

    def __init__(self, mood: str = "down"):
        super().__init__()
        self.mood = mood
        self.tries = {"down": 0, "busy": 0, "refusing": 0}

    async def start(self) -> Relay:
        await self.set_mood(self.mood)
        return self

    async def set_mood(self, mood: str) -> None:
        await self.stop()
        self.mood = mood
        loop = asyncio.get_running_loop()
        if mood == "down":
            self.server = await asyncio.start_server(
                self._hang_up, "127.0.0.1", self.port, reuse_address=True
            )
        else:
            self.server = await loop.create_server(
                lambda: SMTP(self, hostname="relay.test"),
                "127.0.0.1",
                self.port,
                reuse_address=True,
            )

    async def _hang_up(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tries["down"] += 1
        writer.close()

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mood == "busy":
            self.tries["busy"] += 1
            return "451 4.3.2 Please try again later"
        if self.mood == "refusing":
            self.tries["refusing"] += 1
            return f"550 5.1.1 <{address}>: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"


async def until(check: Callable[[], Awaitable[object] | object], timeout: float = 20) -> None:
    """Poll `check` (cheap, local) until it gives something truthy."""
    async with asyncio.timeout(timeout):
        while True:
            result = check()
            if await result if isinstance(result, Awaitable) else result:
                return
            await asyncio.sleep(0.02)


def starttls_login(port: int, ca_file: Path) -> dict[str, Any]:
    """An inbox's `smtp` options for a relay that takes mail over STARTTLS from user `hub`."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls",
        "username": "hub",
        "password": "s3cret",
        "ca_file": str(ca_file),
    }
