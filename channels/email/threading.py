"""Which conversation a mail belongs to, and the token our subjects carry for it.

Threading follows the headers first (In-Reply-To, then References newest first, looked up in
the channel message ids the hub stores for every message, ours included). Mail clients that
drop those headers still keep the subject, so replies carry `[#<conversation>-<mac>]`: the mac
is an HMAC of the conversation id, so a token cannot be guessed to write into someone else's
conversation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

_TOKEN = re.compile(r"\[#(\d{1,12})-([a-z2-7]{10})\]")
_REPLY_PREFIX = re.compile(
    r"^\s*((re|fw|fwd|aw|wg|sv|vs|回复|答复|转发)\s*(\[\d+\])?\s*[:：]\s*)+", re.I
)


class ThreadTokens:
    """Makes and checks the subject token of a conversation."""

    def __init__(self, secret: bytes):
        self._secret = secret

    @classmethod
    def from_data_dir(cls, data_dir: Path, configured: str | None = None) -> ThreadTokens:
        """The configured secret, or a random one kept in the data directory (made once)."""
        if configured:
            return cls(configured.encode())
        path = data_dir / "email" / "thread-token.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}")
            tmp.write_bytes(secrets.token_bytes(32))
            try:
                os.link(tmp, path)  # fails if another process won: everyone reads one key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return cls(path.read_bytes())

    def _mac(self, conversation_id: int) -> str:
        digest = hmac.new(self._secret, str(conversation_id).encode(), hashlib.sha256).digest()
        return base64.b32encode(digest).decode().lower()[:10]

    def message_id(self, message_id: int, domain: str) -> str:
        """The Message-ID of our mail for hub message `message_id` (without brackets).

        The same on every retry, so a send that reached the server before a time-out and is
        sent again is one mail to the recipient's client; keyed so nobody can forge a reference
        to one of our mails to write into a conversation.
        """
        return f"omnihub.{message_id}.{self._mac(-message_id)}@{domain}"

    def token(self, conversation_id: int) -> str:
        return f"[#{conversation_id}-{self._mac(conversation_id)}]"

    def conversation_in(self, subject: str) -> int | None:
        """The conversation a valid token in `subject` names; forged tokens are ignored."""
        for match in _TOKEN.finditer(subject):
            conversation_id = int(match.group(1))
            if hmac.compare_digest(match.group(2), self._mac(conversation_id)):
                return conversation_id
        return None


def base_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and our tokens."""
    return " ".join(_REPLY_PREFIX.sub("", _TOKEN.sub("", subject)).split())


def reply_subject(subject: str, token: str) -> str:
    base = base_subject(subject)
    return f"Re: {base} {token}" if base else f"Re: {token}"
