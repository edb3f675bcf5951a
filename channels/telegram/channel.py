"""The Telegram channel adapter: one bot per inbox, python-telegram-bot embedded in the hub.

Each inbox's bot is a `telegram.ext.Application` without an Updater: the hub's own aiohttp
server takes the webhook (`POST /api/telegram/{inbox}/webhook`), or a polling task calls
`getUpdates`. `get_me` runs once, when the bot connects. Updates are handled in-line, not
through PTB's update queue, because Telegram must hear "200" (webhook) or see the offset move
(polling) only after the message is stored: a failure answers 500 / keeps the offset, and
Telegram sends the update again, which the hub's idempotent inbound path stores once.

Sends go through the durable outbox: `send` waits for Telegram's flood limits, turns bot
choices into inline keyboards and attachments into photos/documents, and maps Bot API errors
onto retry / wait / give up (`outbound.send_error`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Sequence
from typing import ClassVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from telegram import Message as TgMessage
from telegram import Update
from telegram.constants import ParseMode
from telegram.error import Conflict, Forbidden, InvalidToken, TelegramError

from channels.speech import VoskSpeechToText
from channels.telegram import outbound
from channels.telegram.bots import InboxBot, build_bot
from channels.telegram.options import TelegramOptions, parse_options
from channels.telegram.receiving import Receiver
from channels.telegram.store import mark_unreachable, telegram_chat
from hub import errors
from hub.http import Handler, endpoint, json_response, read_json
from hub.model import Attachment, Conversation, DeliveryState, Message, utcnow
from hub.ports import ChannelContext, ChannelSendError, Invite, SendResult
from hub.services.agents import token_hash

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "callback_query"]
PARTIAL_SENDS_KEPT = 10_000  # messages remembered half-sent, so a retry resumes after them


class WebhookUpdate(BaseModel):
    """The envelope of a Bot API update; the rest is read by python-telegram-bot."""

    model_config = ConfigDict(extra="allow")
    update_id: int = Field(ge=0)


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=16, max_length=128)  # the web chat session token
    inbox: str | None = Field(None, min_length=1, max_length=64)


class LinkResponse(BaseModel):
    url: str
    expires_at: str


class TelegramChannel:
    """The `telegram` channel adapter (docs/telegram.md)."""

    name: ClassVar[str] = "telegram"

    def __init__(self, ctx: ChannelContext):
        self.ctx = ctx
        self.options: TelegramOptions = parse_options(ctx.options)
        self._speech: VoskSpeechToText | None = None
        if self.options.transcribe_voice:
            self._speech = VoskSpeechToText(
                self.options.speech_model, max_seconds=self.options.max_voice_seconds
            )
        file_limit = min(self.options.max_file_bytes, ctx.attachments.max_bytes)
        self.bots = {
            inbox: build_bot(inbox, o, self.options) for inbox, o in self.options.inboxes.items()
        }
        self.receiver = Receiver(ctx, self._speech, file_limit)
        self._parts_sent: dict[int, tuple[int, str | None]] = {}  # message id -> (parts, first)

    def webhook_url(self, inbox: str) -> str:
        return f"{self.ctx.public_url}/api/telegram/{inbox}/webhook"

    # --- Channel port -------------------------------------------------------------------------

    async def start(self) -> None:
        # Connecting happens in the background: the hub (web chat, the inbox) serves even
        # while Telegram is unreachable, and each bot retries until it is connected.
        for bot in self.bots.values():
            bot.task = asyncio.create_task(self._run(bot), name=f"omnihub-telegram-{bot.inbox}")

    async def stop(self) -> None:
        for bot in self.bots.values():
            bot.ready.clear()  # sends from now on fail as retryable: resumed on the next start
            if bot.task is not None:
                bot.task.cancel()
        await asyncio.gather(
            *(b.task for b in self.bots.values() if b.task is not None), return_exceptions=True
        )
        for bot in self.bots.values():
            await bot.app.shutdown()
        if self._speech is not None:
            self._speech.close()

    async def send(self, conversation: Conversation, message: Message) -> SendResult:
        bot = self.bots.get(conversation.inbox)
        if bot is None:
            raise ChannelSendError(
                f"no Telegram bot is configured for inbox {conversation.inbox!r}", retryable=False
            )
        if not bot.ready.is_set():
            raise ChannelSendError("the Telegram bot is not connected yet")
        chat_id = await self.ctx.store.read(lambda uow: telegram_chat(uow, conversation))
        if chat_id is None:
            raise ChannelSendError("the contact has no Telegram chat", retryable=False)
        parts = outbound.parts(message)
        # A retry resumes after the parts already delivered, so nobody gets the text twice.
        done, first = self._parts_sent.get(message.id, (0, None))
        for index in range(done, len(parts)):
            await bot.limiter.wait(chat_id)
            try:
                sent = await self._send_part(bot, chat_id, parts[index])
            except TelegramError as exc:
                error = outbound.send_error(exc)
                if not error.retryable:
                    self._parts_sent.pop(message.id, None)
                    if isinstance(exc, Forbidden):
                        await self._unreachable(conversation, chat_id, exc.message)
                raise error from exc
            first = first or f"{bot.inbox}:{chat_id}:{sent.message_id}"
            self._parts_sent[message.id] = (index + 1, first)
            if len(self._parts_sent) > PARTIAL_SENDS_KEPT:  # messages the outbox gave up on
                del self._parts_sent[next(iter(self._parts_sent))]
        self._parts_sent.pop(message.id, None)
        return SendResult(DeliveryState.SENT, channel_message_id=first)

    async def _send_part(self, bot: InboxBot, chat_id: int, part: outbound.Part) -> TgMessage:
        api = bot.app.bot
        if part.kind == "text":
            return await api.send_message(
                chat_id, part.text, parse_mode=ParseMode.HTML, reply_markup=part.keyboard
            )
        assert part.attachment is not None
        data = await self._attachment_bytes(part.attachment)
        if part.kind == "photo":
            return await api.send_photo(chat_id, data, filename=part.attachment.filename)
        return await api.send_document(chat_id, data, filename=part.attachment.filename)

    async def _attachment_bytes(self, attachment: Attachment) -> bytes:
        try:
            return await self.ctx.attachments.read(attachment.storage_key)
        except errors.HubError as exc:
            raise ChannelSendError(
                f"attachment {attachment.filename}: {exc.detail}", retryable=False
            ) from None

    async def _unreachable(self, conversation: Conversation, chat_id: int, reason: str) -> None:
        await self.ctx.store.write(
            lambda uow: mark_unreachable(uow, conversation, str(chat_id), reason)
        )

    # --- HTTP ---------------------------------------------------------------------------------

    def handlers(self) -> Sequence[Handler]:
        return [self.webhook, self.webchat_link]

    @endpoint(
        "POST",
        "/api/telegram/{inbox}/webhook",
        "Telegram Bot API webhook (docs/telegram.md)",
        tags=("telegram",),
        body=WebhookUpdate,
        errors=(400, 401, 403, 404, 413, 422, 503),
        string_params=("inbox",),
    )
    async def webhook(self, request: web.Request) -> web.StreamResponse:
        bot = self.bots.get(request.match_info["inbox"])
        if bot is None or bot.options.mode != "webhook":
            raise errors.NotFound("no Telegram webhook here", code="unknown_inbox")
        sent = request.headers.get(SECRET_HEADER)
        if sent is None:
            raise errors.NotAuthenticated(f"the {SECRET_HEADER} header is missing")
        if not hmac.compare_digest(sent.encode(), bot.secret.encode()):
            raise errors.Forbidden(f"wrong {SECRET_HEADER}", code="bad_secret")
        body = await read_json(request, WebhookUpdate)
        if not bot.ready.is_set():
            raise errors.Unavailable("the Telegram bot is still connecting; send again")
        try:
            update = Update.de_json(body.model_dump(), bot.app.bot)
        except (KeyError, TypeError, ValueError) as exc:
            raise errors.InvalidRequest(
                f"not a Telegram update: {exc}", code="bad_update"
            ) from None
        # Any other failure (the database is down) answers 500 and Telegram sends it again.
        await self.receiver.handle(bot, update)
        return json_response({"ok": True})

    @endpoint(
        "POST",
        "/api/webchat/telegram-link",
        "A t.me deep link that continues this web chat customer's conversations on Telegram",
        tags=("webchat", "telegram"),
        body=LinkRequest,
        response=LinkResponse,
        errors=(401, 404, 422, 503),
    )
    async def webchat_link(self, request: web.Request) -> web.StreamResponse:
        req = await read_json(request, LinkRequest)
        hashed = token_hash(req.token)
        session = await self.ctx.store.read(lambda uow: uow.webchat_session(hashed))
        if session is None:
            raise errors.InvalidToken("unknown or expired web chat token")
        invite = await self.invite(session.contact_id, req.inbox)
        return json_response(LinkResponse(url=invite.url, expires_at=invite.expires_at.isoformat()))

    async def invite(self, contact_id: int, inbox: str | None = None) -> Invite:
        """InvitingChannel: a t.me deep link that joins the Telegram user who opens it to
        the contact (agents ask through `POST /api/contacts/{id}/invites`)."""
        name = inbox or next(iter(self.bots))
        bot = self.bots.get(name)
        if bot is None:
            raise errors.NotFound(f"no Telegram bot for inbox {name!r}", code="unknown_inbox")
        if not bot.ready.is_set() or not bot.app.bot.username:
            raise errors.Unavailable("the Telegram bot is still connecting; try again shortly")
        if await self.ctx.store.read(lambda uow: uow.contact(contact_id)) is None:
            raise errors.NotFound(f"no contact {contact_id}", code="unknown_contact")
        link = bot.signer.mint(contact_id, utcnow())
        url = f"https://t.me/{bot.app.bot.username}?start={bot.signer.encode(link)}"
        return Invite(self.name, name, url, link.expires_at)

    # --- connecting and polling ---------------------------------------------------------------

    async def _run(self, bot: InboxBot) -> None:
        delay = 1.0
        while True:
            try:
                await bot.app.initialize()  # getMe, once per connection
                if bot.options.mode == "webhook":
                    await bot.app.bot.set_webhook(
                        self.webhook_url(bot.inbox),
                        secret_token=bot.secret,
                        allowed_updates=ALLOWED_UPDATES,
                    )
                else:
                    await bot.app.bot.delete_webhook()  # getUpdates refuses while one is set
                break
            except InvalidToken:
                log.error("Telegram rejected the token of inbox %s; the bot stays off", bot.inbox)
                return
            except TelegramError as exc:
                log.warning(
                    "Telegram bot of inbox %s cannot connect (%s); retry in %.0f s",
                    bot.inbox,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 300)
        bot.ready.set()
        log.info(
            "Telegram bot @%s serves inbox %s by %s",
            bot.app.bot.username,
            bot.inbox,
            bot.options.mode,
        )
        if bot.options.mode == "polling":
            await self._poll(bot)

    async def _poll(self, bot: InboxBot) -> None:
        """Long polling: the offset moves past an update only once it is stored."""
        offset: int | None = None
        delay = 1.0
        while True:
            try:
                updates = await bot.app.bot.get_updates(
                    offset=offset,
                    timeout=self.options.polling_timeout,
                    allowed_updates=ALLOWED_UPDATES,
                )
                for update in updates:
                    await self.receiver.handle(bot, update)
                    offset = update.update_id + 1
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                log.error("Telegram rejected the token of inbox %s; polling stops", bot.inbox)
                return
            except Conflict as exc:
                log.error(
                    "inbox %s: another process polls this bot or a webhook is set (%s)",
                    bot.inbox,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
            except Exception:
                # Telegram unreachable or the database down: the update is not confirmed, so
                # the next getUpdates returns it again. An update that keeps failing is retried
                # (and logged) rather than skipped: the house rule is to lose nothing.
                log.exception("inbox %s: polling failed; retry in %.0f s", bot.inbox, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
