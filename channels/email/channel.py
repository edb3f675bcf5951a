"""The `email` channel adapter: inboxes that receive mail (SMTP listener, IMAP) and answer it.

Fax-to-email rides on it: an inbox's `fax` rules turn mail from a fax gateway into `fax`
channel messages, and the replies to those conversations go out through this adapter too
(`sends_for`), rendered to PDF and mailed to the gateway.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from channels.email.intake import CHANNEL, RAW_NAME, UNKNOWN_SENDER, MailIntake
from channels.email.listener import SmtpListener
from channels.email.options import parse_options
from channels.email.parsing import MailHead, parse_head
from channels.email.sending import OutgoingFile, Reply, build_mail, deliver
from channels.email.threading import ThreadTokens, reply_subject
from hub.errors import HubError
from hub.model import (
    AuthorKind,
    Contact,
    Conversation,
    DeliveryState,
    Direction,
    Message,
    MessageFormat,
)
from hub.ports import ChannelContext, ChannelSendError, SendResult, UnitOfWork

if TYPE_CHECKING:
    from channels.email.fax import FaxDesk
    from channels.email.imap import ImapPoller

log = logging.getLogger(__name__)

HEAD_BYTES = 256 * 1024  # of a stored mail read to answer it: its header block
MAX_REFERENCES = 20


class EmailChannel:
    """Inbound mail to conversations, agent and bot replies back as mail."""

    name: ClassVar[str] = CHANNEL
    # Channel names whose outbound messages this adapter delivers besides its own.
    sends_for: ClassVar[tuple[str, ...]] = ("fax",)

    def __init__(self, ctx: ChannelContext):
        self.ctx = ctx
        self.options = parse_options(ctx.options)
        self.tokens: ThreadTokens | None = None
        self.intake: MailIntake | None = None
        self.listeners: dict[str, SmtpListener] = {}
        self.pollers: dict[str, ImapPoller] = {}
        self.fax: FaxDesk | None = None
        if any(o.fax for o in self.options.inboxes.values()):
            from channels.email.fax import FaxDesk  # OCR libraries load only when used

            self.fax = FaxDesk(ctx, self.options)

    # --- Channel port -------------------------------------------------------------------------

    async def start(self) -> None:
        self.tokens = await asyncio.to_thread(
            ThreadTokens.from_data_dir, self.ctx.data_dir, self.options.thread_secret
        )
        self.intake = MailIntake(self.ctx, self.options, self.tokens)
        if self.fax is not None:
            self.intake.fax = self.fax.take
            self.fax.intake = self.intake
        try:
            await self._start_routes(self.intake)
        except BaseException:
            await self.stop()  # what did start (an earlier inbox's listener) closes again
            raise

    async def _start_routes(self, intake: MailIntake) -> None:
        for name, opts in self.options.inboxes.items():
            if opts.listen is not None:
                listener = SmtpListener(name, opts, intake.take, self.ctx.attachments.max_bytes)
                await listener.start()
                self.listeners[name] = listener
            if opts.imap is not None:
                from channels.email.imap import ImapPoller

                poller = ImapPoller(name, opts.imap, intake.take, self.ctx.attachments.max_bytes)
                poller.start()
                self.pollers[name] = poller

    async def stop(self) -> None:
        for poller in self.pollers.values():
            await poller.stop()
        for listener in self.listeners.values():
            await listener.stop()
        if self.fax is not None:
            self.fax.close()

    async def send(self, conversation: Conversation, message: Message) -> SendResult:
        opts = self.options.inboxes.get(conversation.inbox)
        if opts is None or opts.smtp is None:
            raise ChannelSendError(
                f"email inbox {conversation.inbox!r} has no SMTP server configured for replies",
                retryable=False,
            )
        assert self.tokens is not None, "send before start"
        try:
            contact, head = await self._thread(conversation)
            files = [
                OutgoingFile(
                    await self.ctx.attachments.read(a.storage_key), a.filename, a.content_type
                )
                for a in message.attachments
            ]
        except HubError as exc:  # a stored file that is gone: this reply cannot go out
            raise ChannelSendError(exc.detail, retryable=False) from None
        domain = opts.address.partition("@")[2]
        message_id = self.tokens.message_id(message.id, domain)
        token = self.tokens.token(conversation.id)
        references = tuple(
            [
                *(head.references if head else ()),
                *([head.message_id] if head and head.message_id else []),
            ]
        )[-MAX_REFERENCES:]
        if conversation.channel == "fax":
            if self.fax is None:
                raise ChannelSendError("no inbox has fax rules", retryable=False)
            to, extra = await self.fax.reply_route(opts, contact, message, token, head)
            files = [*extra, *files]
            subject = f"Fax {token}"
            text, text_format = self.fax.cover_text(message), MessageFormat.PLAIN
        else:
            to = (head.reply_address if head else "") or _email_of(contact)
            subject = reply_subject(head.subject if head else "", token)
            text, text_format = message.text, message.format
        if not to or to == UNKNOWN_SENDER:
            raise ChannelSendError("the contact has no email address", retryable=False)
        mail = build_mail(
            opts,
            Reply(
                to=to,
                subject=subject,
                text=text,
                message_id=message_id,
                in_reply_to=head.message_id if head else None,
                references=references,
                files=tuple(files),
                format=text_format,
                automatic=message.author_kind is AuthorKind.BOT,
            ),
        )
        await deliver(opts.smtp, opts.address, [to], mail)
        return SendResult(DeliveryState.SENT, channel_message_id=message_id)

    async def _thread(self, conversation: Conversation) -> tuple[Contact | None, MailHead | None]:
        """The contact and the headers of the customer's latest mail in the conversation."""

        def run(uow: UnitOfWork) -> tuple[Contact | None, list[Message]]:
            return uow.contact(conversation.contact_id), uow.messages(conversation.id, limit=200)

        contact, messages = await self.ctx.store.read(run)
        for m in reversed(messages):
            raw = next((a for a in m.attachments if a.filename == RAW_NAME), None)
            if m.direction is Direction.INBOUND and raw is not None:
                path = self.ctx.attachments.path(raw.storage_key)
                return contact, await asyncio.to_thread(_read_head, path)
        return contact, None


def _read_head(path: Path) -> MailHead:
    with path.open("rb") as f:
        return parse_head(f.read(HEAD_BYTES))


def _email_of(contact: Contact | None) -> str:
    if contact is None:
        return ""
    return next((i.address for i in contact.identities if i.channel == CHANNEL), "")
