"""Settings of the email channel (`[channels.email]`), validated when the hub starts.

One channel serves several inboxes; each has its address, how mail comes in (an SMTP listener a
mail server relays to, an IMAP mailbox, or both), how replies go out (an SMTP server) and,
optionally, the fax-to-email gateways whose mail becomes the `fax` channel.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.config import channel_options

MB = 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenOptions(_Strict):
    """The SMTP listener a mail server relays this inbox's mail to."""

    host: str = "127.0.0.1"
    port: int = Field(2525, ge=0, le=65535)  # 0: any free port (tests)
    # Refused at SMTP level with 552 before the body is read past it; never a bounce of ours.
    max_message_bytes: int = Field(25 * MB, ge=1024, le=200 * MB)
    # Per envelope sender: sustained mails a minute and burst; over it a 450 (try later).
    rate_per_minute: float = Field(30, ge=0)
    burst: float = Field(20, ge=1)


class ImapOptions(_Strict):
    """An IMAP mailbox polled (IDLE where the server supports it) for this inbox's mail."""

    host: str
    port: int = Field(993, ge=1, le=65535)
    tls: bool = True  # implicit TLS (IMAPS); False for a plain connection (loopback, tests)
    username: str
    password: str
    mailbox: str = "INBOX"
    poll_seconds: float = Field(60, gt=0, le=3600)  # when the server has no IDLE
    idle_seconds: float = Field(300, gt=0, le=1740)  # re-issue IDLE before servers drop it


class SmtpOptions(_Strict):
    """The server replies are handed to."""

    host: str
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = Field(30, gt=0, le=600)
    # PEM file of the certificate authorities to trust for this server (a private relay with
    # its own CA); by default the system's. Certificates are always verified.
    ca_file: str | None = None


class FaxOptions(_Strict):
    """Which mails are faxes from a fax-to-email gateway, and how replies reach a fax."""

    # A mail is a fax when its sender matches one of these (regular expressions, full match,
    # case-insensitive) and, if set, its subject matches `subject`.
    gateways: tuple[str, ...] = Field(min_length=1)
    subject: str | None = None
    # Where the caller's number is read: the subject, the sender address or the text body.
    # The first phone number found there (phonenumbers' matcher) is taken, or, with
    # `number_pattern`, what that regex's group `number` captures.
    number_from: Literal["subject", "sender", "body"] = "subject"
    number_pattern: str | None = None
    region: str = Field("US", min_length=2, max_length=2)  # for numbers without a country code
    # Replies are rendered to a PDF and mailed here; `{number}` is the E.164 number without "+".
    send_to: str = "{number}@fax.example"
    ocr_languages: str = Field("eng+chi_sim", pattern=r"^[a-z_]+(\+[a-z_]+)*$")
    # The font replies are rendered with: it needs Chinese glyphs (Debian fonts-noto-cjk).
    reply_font: str = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
    max_pages: int = Field(20, ge=1, le=200)

    @field_validator("gateways")
    @classmethod
    def _gateways_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            _compile(pattern)
        return value

    @field_validator("subject")
    @classmethod
    def _subject_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            _compile(value)
        return value

    @field_validator("number_pattern")
    @classmethod
    def _has_number_group(cls, value: str | None) -> str | None:
        if value is not None and "number" not in _compile(value).groupindex:
            raise ValueError("needs a named group (?P<number>...)")
        return value

    @field_validator("send_to")
    @classmethod
    def _has_placeholder(cls, value: str) -> str:
        if "{number}" not in value or "@" not in value:
            raise ValueError("must be an address holding {number}, e.g. {number}@fax.example")
        return value

    def is_fax(self, sender: str, subject: str) -> bool:
        if not any(re.fullmatch(p, sender, re.IGNORECASE) for p in self.gateways):
            return False
        return self.subject is None or re.search(self.subject, subject, re.IGNORECASE) is not None


class InboxOptions(_Strict):
    """One email inbox."""

    address: str = Field(min_length=3, max_length=254)  # From of replies; accepted recipient
    display_name: str | None = None
    # More addresses the listener accepts mail for (aliases); compared case-insensitively.
    aliases: tuple[str, ...] = ()
    listen: ListenOptions | None = None
    imap: ImapOptions | None = None
    smtp: SmtpOptions | None = None
    max_attachment_bytes: int = Field(25 * MB, ge=1, le=200 * MB)
    max_attachments: int = Field(20, ge=0, le=200)
    # Attachment types kept (by the type the bytes really have, not the one declared);
    # others are listed in the message text with the reason and not stored.
    attachment_types: tuple[str, ...] = (
        "image/*",
        "application/pdf",
        "text/plain",
        "text/csv",
        "audio/*",
        "video/*",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.*",
        "application/vnd.ms-excel",
        "application/vnd.oasis.opendocument.*",
    )
    fax: FaxOptions | None = None

    @field_validator("address")
    @classmethod
    def _one_address(cls, value: str) -> str:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", value):
            raise ValueError(f"{value!r} is not a plain address (name@domain)")
        return value.lower()

    @model_validator(mode="after")
    def _has_a_route_in(self) -> InboxOptions:
        if self.listen is None and self.imap is None:
            raise ValueError("set `listen` (SMTP listener) or `imap` (mailbox polling) or both")
        return self

    @property
    def recipients(self) -> frozenset[str]:
        return frozenset({self.address, *(a.lower() for a in self.aliases)})


class EmailOptions(_Strict):
    inboxes: dict[str, InboxOptions] = Field(min_length=1)
    # Keys the subject's conversation token (`[#123-abcd1234]`); by default a random key kept
    # in the data directory. Set it when several hubs without a shared data dir answer mail.
    thread_secret: str | None = Field(None, min_length=16)
    # Worker threads for OCR and PDF rendering (CPU-bound; the event loop never waits on them).
    ocr_workers: int = Field(1, ge=1, le=16)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None


def parse_options(raw: dict[str, Any], channel: str = "email") -> EmailOptions:
    """Validated options or a ConfigError naming each bad setting (channels.email.…)."""
    return channel_options(EmailOptions, raw, channel)
