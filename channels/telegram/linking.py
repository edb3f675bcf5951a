"""Deep links that join a Telegram user to a contact the hub already knows.

`https://t.me/<bot>?start=<token>` opens the bot; pressing Start sends `/start <token>`. The
token names a contact and an expiry and is signed with a key derived from the bot's own
token, so only this hub can mint it, nothing needs storing, and every hub process accepts it.
Telegram allows 64 characters of `A-Za-z0-9_-` in a start parameter; ours take about 35.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_TOKEN = re.compile(r"^([0-9a-z]{1,13})-([0-9a-z]{1,10})-([A-Za-z0-9_-]{22})$")


@dataclass(frozen=True, slots=True)
class LinkToken:
    contact_id: int
    expires_at: datetime


class LinkSigner:
    """Mints and checks deep-link tokens for one bot (inbox)."""

    def __init__(self, bot_token: str, inbox: str, ttl: timedelta):
        self._key = hmac.new(bot_token.encode(), b"omnihub-telegram-link", hashlib.sha256).digest()
        self.inbox = inbox
        self.ttl = ttl

    def mint(self, contact_id: int, now: datetime) -> LinkToken:
        return LinkToken(contact_id, (now + self.ttl).replace(microsecond=0))

    def encode(self, link: LinkToken) -> str:
        contact = _b36(link.contact_id)
        expires = _b36(int(link.expires_at.timestamp()))
        return f"{contact}-{expires}-{self._sign(contact, expires)}"

    def decode(self, token: str, now: datetime) -> LinkToken | None:
        """The link the token stands for, or None when it is forged, garbled or expired."""
        found = _TOKEN.match(token)
        if not found:
            return None
        contact, expires, signature = found.groups()
        if not hmac.compare_digest(signature, self._sign(contact, expires)):
            return None
        link = LinkToken(int(contact, 36), datetime.fromtimestamp(int(expires, 36), UTC))
        return link if link.expires_at > now else None

    def _sign(self, contact: str, expires: str) -> str:
        mac = hmac.new(self._key, f"{self.inbox}:{contact}:{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode()[:22]  # 132 bits


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out
