"""One received mail into the hub: the raw message kept, parsed, threaded, stored.

Both inbound routes (the SMTP listener and IMAP polling) hand raw bytes to `MailIntake.take`,
which returns only once the message is stored, so the route acknowledges (SMTP 250, IMAP
\\Seen) only what the hub holds. A mail that cannot be parsed is still stored, with its raw
original attached and an explanation for the agent.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable

from channels.email.options import EmailOptions, InboxOptions
from channels.email.parsing import RAW_NAME, MailPart, ParsedMail, parse_mail
from channels.email.threading import ThreadTokens, base_subject
from hub.errors import HubError
from hub.model import Attachment, Identity, InboundMessage, Message
from hub.ports import ChannelContext

log = logging.getLogger(__name__)

CHANNEL = "email"
RAW_TYPE = "message/rfc822"
HTML_NAME = "message.html"
INLINE_PARSE_BYTES = 256 * 1024  # larger mails are parsed on a worker thread
UNKNOWN_SENDER = "unknown-sender@invalid"
MAX_KEY = 255  # stored channel message ids
MAX_NAME = 200  # contact display names
_CJK = re.compile(r"[\u3400-\u9fff]")
# Types never kept whatever the inbox allows: they run code when opened from the hub.
_NEVER = ("text/html", "image/svg+xml", "application/xhtml+xml", "application/javascript")

# A fax handler takes over mails from a fax gateway (channels.email.fax).
FaxHandler = Callable[[InboxOptions, str, bytes, ParsedMail, Attachment], Awaitable[Message]]


class MailIntake:
    def __init__(self, ctx: ChannelContext, options: EmailOptions, tokens: ThreadTokens):
        self.ctx = ctx
        self.options = options
        self.tokens = tokens
        self.fax: FaxHandler | None = None

    async def take(self, inbox: str, raw: bytes, envelope_sender: str | None = None) -> Message:
        """Store one raw mail on `inbox`; raises only when the hub could not store it."""
        opts = self.options.inboxes[inbox]
        original = await self.ctx.attachments.save(raw, RAW_NAME, RAW_TYPE)
        try:
            if len(raw) > INLINE_PARSE_BYTES:
                parsed = await asyncio.to_thread(parse_mail, raw, envelope_sender)
            else:
                parsed = parse_mail(raw, envelope_sender)
        except Exception as exc:  # a parser bug on hostile input: keep the mail raw
            log.exception("could not parse a mail of %d bytes on inbox %s", len(raw), inbox)
            parsed = unparsed(raw, envelope_sender, exc)
        if opts.fax is not None and self.fax is not None:
            if opts.fax.is_fax(parsed.sender, parsed.subject):
                return await self.fax(opts, inbox, raw, parsed, original)
        return await self._store_email(opts, inbox, raw, parsed, original)

    async def _store_email(
        self,
        opts: InboxOptions,
        inbox: str,
        raw: bytes,
        parsed: ParsedMail,
        original: Attachment,
    ) -> Message:
        message_id = mail_key(parsed, raw)
        found = await self.thread_of(CHANNEL, message_id, parsed)
        if isinstance(found, Message):
            return found  # already stored (a relay that resent after a lost 250)
        kept, refused = await self.keep_attachments(opts, parsed.attachments)
        if parsed.html:
            # The sanitised HTML body, for agents who want the mail as it was laid out (the
            # hub serves it sandboxed); the text above is what the inbox and the bot read.
            try:
                html = await self.ctx.attachments.save(parsed.html.encode(), HTML_NAME, "text/html")
                kept.insert(0, html)
            except HubError as exc:
                refused.append(f"the HTML body was not kept: {exc.detail}")
        notes = [*refused, *parsed.problems]
        text = self.compose_text(parsed, new_thread=found is None, notes=notes)
        sender = Identity(CHANNEL, parsed.sender or UNKNOWN_SENDER)
        name = parsed.sender_name[:MAX_NAME] if parsed.sender_name else None
        return await self.ctx.sink.receive(
            InboundMessage(
                channel=CHANNEL,
                inbox=inbox,
                sender=sender,
                text=text,
                channel_message_id=message_id,
                sender_name=name,
                language=language_of(text),
                attachments=(original, *kept),
                conversation_id=found,
                new_conversation=found is None,  # a new thread is a new conversation
                automated=parsed.auto_generated,
            )
        )

    async def thread_of(
        self, channel: str, message_id: str, parsed: ParsedMail
    ) -> Message | int | None:
        """The stored copy of this very mail, else the conversation it continues, else None.

        A mail that refers to nothing is not looked up: the sink stores a resent copy once
        (it is idempotent on the Message-ID), and the hot path saves a read.
        """
        refs = [key_of(r) for r in (*parsed.in_reply_to, *reversed(parsed.references))]
        token_conversation = self.tokens.conversation_in(parsed.subject)
        if not refs and token_conversation is None:
            return None
        keys = {(channel, message_id)} | {(c, r) for r in refs for c in (CHANNEL, "fax")}
        known = await self.ctx.store.read(lambda uow: uow.messages_by_channel_ids(keys))
        if (own := known.get((channel, message_id))) is not None:
            return own
        for ref in refs:
            for c in (CHANNEL, "fax"):
                if (earlier := known.get((c, ref))) is not None:
                    return earlier.conversation_id
        if token_conversation is not None:
            exists = await self.ctx.store.read(lambda uow: uow.conversation(token_conversation))
            if exists is not None:
                return token_conversation
        return None

    async def keep_attachments(
        self, opts: InboxOptions, parts: tuple[MailPart, ...]
    ) -> tuple[list[Attachment], list[str]]:
        """Store the attachments the inbox accepts; the others are named with the reason."""
        kept: list[Attachment] = []
        refused: list[str] = []
        limit = min(opts.max_attachment_bytes, self.ctx.attachments.max_bytes)
        for part in parts:
            why = refusal(opts, part, limit)
            if why is None and len(kept) >= opts.max_attachments:
                why = f"more than {opts.max_attachments} attachments"
            if why is not None:
                refused.append(f"attachment {part.filename!r} not kept: {why}")
                continue
            try:
                kept.append(
                    await self.ctx.attachments.save(part.data, part.filename, kept_type(part))
                )
            except HubError as exc:
                refused.append(f"attachment {part.filename!r} not kept: {exc.detail}")
        return kept, refused

    def compose_text(self, parsed: ParsedMail, *, new_thread: bool, notes: list[str]) -> str:
        """What agents and the bot read: the subject on a new thread, then the new text."""
        subject = base_subject(parsed.subject)
        body = parsed.body
        if new_thread and subject and not body.startswith(subject):
            text = f"{subject}\n\n{body}" if body else subject
        else:
            text = body or subject
        if not text:
            text = "(an email without text)"
        if notes:
            text += "\n\n" + "\n".join(f"[{note}]" for note in notes)
        limit = self.ctx.max_text_chars
        if len(text) > limit:
            marker = f"\n\n[cut at {limit} characters; the whole mail is attached as {RAW_NAME}]"
            text = text[: max(0, limit - len(marker))] + marker
        return text


def key_of(message_id: str) -> str:
    """The channel message id the hub stores for a Message-ID (bounded: long ones hashed)."""
    if len(message_id) <= MAX_KEY:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def mail_key(parsed: ParsedMail, raw: bytes) -> str:
    """The stored key of a mail: its Message-ID; without one, a digest of what it says (From,
    To, Date, Subject, text, attachments), so the same mail relayed again with one more
    `Received:` header is the same message; a hash of the raw bytes only when unparsed."""
    if parsed.message_id:
        return key_of(parsed.message_id)
    return parsed.fingerprint or "sha256:" + hashlib.sha256(raw).hexdigest()


def refusal(opts: InboxOptions, part: MailPart, limit: int) -> str | None:
    """Why an attachment is not kept, or None. Judged by what the bytes are, not the label."""
    if len(part.data) > limit:
        return f"{len(part.data)} bytes; the limit is {limit}"
    real = part.sniffed_type
    if real in _NEVER:
        return f"{real} files are not accepted"
    if not any(fnmatch.fnmatch(real, pattern) for pattern in opts.attachment_types):
        declared = part.declared_type
        label = f" (labelled {declared})" if declared != real else ""
        return f"the file is {real}{label}, which this inbox does not accept"
    return None


def kept_type(part: MailPart) -> str:
    # libmagic calls CSV and other plain formats text/plain: keep the more precise label.
    if part.sniffed_type == "text/plain" and part.declared_type.startswith("text/"):
        return part.declared_type
    return part.sniffed_type


def language_of(text: str) -> str | None:
    """zh-CN for mostly Chinese text (the bot answers in it); None lets the hub decide."""
    letters = [ch for ch in text[:2000] if ch.isalpha()]
    if letters and sum(1 for ch in letters if _CJK.match(ch)) * 3 >= len(letters):
        return "zh-CN"
    return None


def unparsed(raw: bytes, envelope_sender: str | None, exc: Exception) -> ParsedMail:
    return ParsedMail(
        message_id=None,
        in_reply_to=(),
        references=(),
        subject="",
        sender=(envelope_sender or "").lower(),
        sender_name=None,
        body="(an email the hub could not read; the original is attached as message.eml)",
        full_text="",
        html=None,
        attachments=(),
        auto_generated=None,
        problems=(f"parse error: {type(exc).__name__}",),
    )
