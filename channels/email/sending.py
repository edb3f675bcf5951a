"""Replies out through the inbox's SMTP server (aiosmtplib), as threaded MIME mail.

Failures become ChannelSendError for the durable outbox: connection problems, time-outs and
4xx answers are retried, 5xx answers (a refused recipient, a rejected message) are final and
shown to the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from channels.email.options import InboxOptions, SmtpOptions
from hub import formatting
from hub.model import MessageFormat
from hub.ports import ChannelSendError


@dataclass(frozen=True, slots=True)
class OutgoingFile:
    data: bytes
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Reply:
    """An outgoing mail before it becomes MIME."""

    to: str
    subject: str
    text: str
    message_id: str  # without angle brackets
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    files: tuple[OutgoingFile, ...] = ()
    html: bool = True  # add an HTML alternative of the text
    format: MessageFormat = MessageFormat.PLAIN  # Markdown becomes text and HTML parts
    automatic: bool = False  # written by the bot, not a person


def build_mail(inbox: InboxOptions, reply: Reply) -> EmailMessage:
    msg = EmailMessage()
    local, _, domain = inbox.address.partition("@")
    msg["From"] = Address(inbox.display_name or "", local, domain)
    msg["To"] = reply.to
    msg["Subject"] = reply.subject
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = f"<{reply.message_id}>"
    if reply.in_reply_to:
        msg["In-Reply-To"] = f"<{reply.in_reply_to}>"
    if reply.references:
        msg["References"] = " ".join(f"<{r}>" for r in reply.references)
    if reply.automatic:
        # RFC 3834: the bot's answers are automatic; auto-responders must not answer them.
        msg["Auto-Submitted"] = "auto-replied"
        msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(formatting.email_text(reply.text, reply.format))
    if reply.html:
        msg.add_alternative(formatting.email_html(reply.text, reply.format), subtype="html")
    for f in reply.files:
        maintype, _, subtype = f.content_type.partition("/")
        msg.add_attachment(
            f.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=f.filename,
        )
    return msg


async def deliver(
    smtp: SmtpOptions, sender: str, recipients: Sequence[str], msg: EmailMessage
) -> None:
    """Hand the mail to the SMTP server or raise ChannelSendError."""
    try:
        await aiosmtplib.send(
            msg,
            sender=sender,
            recipients=list(recipients),
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.username,
            password=smtp.password,
            use_tls=smtp.security == "tls",
            start_tls=True if smtp.security == "starttls" else False,
            timeout=smtp.timeout_seconds,
            cert_bundle=smtp.ca_file,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [r.code for r in exc.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        raise ChannelSendError(
            f"recipient refused: {detail}", retryable=all(400 <= c < 500 for c in codes)
        ) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        # The hub's own credentials, not this mail: retried until an admin mends them (as
        # Postfix defers on a failed SASL login), rather than failing every reply meanwhile.
        raise ChannelSendError(
            f"SMTP server {smtp.host} refused the login: {exc.code} {exc.message}",
            retryable=True,
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise ChannelSendError(
            f"SMTP server {smtp.host} answered {exc.code} {exc.message}",
            retryable=400 <= exc.code < 500,
        ) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise ChannelSendError(
            f"SMTP server {smtp.host}:{smtp.port} unreachable: {exc}", retryable=True
        ) from None
