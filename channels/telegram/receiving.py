"""Turning Telegram updates into stored messages: text, files, voice notes (transcribed),
`/start` deep links and inline-button presses."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from telegram import CallbackQuery, Update
from telegram import Message as TgMessage
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError

from channels.telegram import inbound, outbound
from channels.telegram.bots import InboxBot
from channels.telegram.phrases import VOICE_PLACEHOLDER, say
from channels.telegram.store import choice_for, link_identity
from hub import errors
from hub.model import Attachment, Identity, InboundMessage, utcnow
from hub.ports import ChannelContext, SpeechToText

log = logging.getLogger(__name__)

CHANNEL = inbound.CHANNEL
HANDLED_TWICE_GUARD = 10_000  # updates remembered while in flight


class Receiver:
    """Handles the updates of every bot of the channel."""

    def __init__(self, ctx: ChannelContext, speech: SpeechToText | None, file_limit: int):
        self.ctx = ctx
        self.speech = speech
        self.file_limit = file_limit
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def handle(self, bot: InboxBot, update: Update) -> None:
        """Store what the update carries; return only once it is stored (or deliberately
        ignored). Raises when storing fails, so that Telegram sends the update again."""
        if (message := update.message) is not None:
            key = f"{bot.inbox}:{message.chat.id}:{message.message_id}"
            await self._once(key, lambda: self._on_message(bot, message, key))
        elif update.callback_query is not None:
            await self._on_callback(bot, update.callback_query)
        else:
            kinds = [k for k, v in update.to_dict().items() if k != "update_id" and v]
            log.info(
                "inbox %s: ignoring a Telegram update of kind %s",
                bot.inbox,
                ",".join(kinds) or "unknown",
            )

    async def _once(self, key: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run `work` for an update unless the same update (Telegram resending it while a
        slow voice note is transcribed) is already being handled: then wait for that."""
        running = self._in_flight.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        if len(self._in_flight) >= HANDLED_TWICE_GUARD:
            raise errors.Unavailable("too many Telegram updates in flight")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            await work()
            future.set_result(None)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: a resend that waits re-raises it, none is fine too
            raise
        finally:
            del self._in_flight[key]

    async def _on_message(self, bot: InboxBot, message: TgMessage, key: str) -> None:
        who = inbound.sender(message)
        if who is None:
            log.info("inbox %s: ignoring a message without a person behind it", bot.inbox)
            return
        if inbound.is_group(message.chat) and not bot.options.allow_groups:
            log.info(
                "inbox %s: ignoring group chat %s (allow_groups is off)", bot.inbox, message.chat.id
            )
            return
        payload = inbound.start_payload(message)
        if payload is not None:
            await self._on_start(bot, message, who, payload)
            return
        text = message.text or message.caption or ""
        attachments: tuple[Attachment, ...] = ()
        ref = inbound.media(message, self.file_limit)
        if ref is not None:
            if await self.ctx.store.read(lambda uow: uow.messages_by_channel_ids({(CHANNEL, key)})):
                return  # a resent update, stored already: no need to fetch its file again
            got = await self._fetch(bot, ref, who)
            if got is None:
                return
            if isinstance(got, str):  # Telegram will not give the file: the text is kept
                text = f"{text}\n\n[{got}]" if text.strip() else f"[{got}]"
            else:
                attachment, data = got
                attachments = (attachment,)
                if ref.kind == "voice":
                    text = await self._transcript(data) or VOICE_PLACEHOLDER
        elif not text.strip():
            log.info(
                "inbox %s: ignoring a message with nothing we read (sticker, location…)", bot.inbox
            )
            await self.reply(bot, who, say("unsupported", who.language))
            return
        if inbound.is_group(message.chat) and message.from_user is not None:
            text = f"{inbound.user_name(message.from_user)}: {text}"
        inbound_message = InboundMessage(
            channel=CHANNEL,
            inbox=bot.inbox,
            sender=who.identity,
            text=text,
            channel_message_id=key,
            sender_name=who.name,
            language=who.language,
            attachments=attachments,
            raw=message.to_dict(),
        )
        try:
            await self.ctx.sink.receive(inbound_message)
        except errors.HubError as exc:
            if exc.status >= 500:
                raise
            # The customer's message itself is unusable (too long): tell them, do not retry.
            log.info("inbox %s: refused a Telegram message: %s", bot.inbox, exc.detail)
            await self.reply(bot, who, exc.detail)

    async def _fetch(
        self, bot: InboxBot, ref: inbound.MediaRef, who: inbound.Sender
    ) -> tuple[Attachment, bytes] | str | None:
        """Download and store a message's file; None (and the customer told) when too big;
        a note for the agent when Telegram refuses the file for good.

        Raises Unavailable (503: Telegram sends the update again) while the Bot API cannot
        be reached or asks us to wait, so that the message is stored with its file later
        rather than now without it."""
        too_big = ref.size is not None and ref.size > self.file_limit
        data = b""
        if not too_big:
            try:
                file = await bot.app.bot.get_file(ref.file_id)
                too_big = file.file_size is not None and file.file_size > self.file_limit
                if not too_big:
                    data = bytes(await file.download_as_bytearray())
                    too_big = len(data) > self.file_limit
            except BadRequest as exc:
                if "too big" not in exc.message.lower():
                    log.info("inbox %s: Telegram refused a %s: %s", bot.inbox, ref.kind, exc)
                    return f"the {ref.kind} could not be fetched from Telegram: {exc.message}"
                too_big = True
            except (NetworkError, RetryAfter) as exc:  # NetworkError includes TimedOut
                log.warning(
                    "inbox %s: the Bot API is unreachable (%s); Telegram will resend",
                    bot.inbox,
                    exc,
                )
                raise errors.Unavailable(
                    f"the Telegram Bot API could not be reached to fetch the {ref.kind}; "
                    "send the update again",
                    code="telegram_unreachable",
                ) from None
        if not too_big:
            try:
                return await self.ctx.attachments.save(data, ref.filename, ref.content_type), data
            except errors.TooLarge:
                pass
        log.info(
            "inbox %s: refused a %s of %s bytes (limit %d)",
            bot.inbox,
            ref.kind,
            ref.size if ref.size is not None else "?",
            self.file_limit,
        )
        mb = max(1, self.file_limit // 1024**2)
        await self.reply(bot, who, say("too_large", who.language, mb=mb))
        return None

    async def _transcript(self, audio: bytes) -> str:
        if self.speech is None:
            return ""
        try:
            return await self.speech.transcribe(audio)
        except ValueError as exc:
            log.warning("a voice note could not be transcribed: %s", exc)
            return ""

    async def _on_start(
        self, bot: InboxBot, message: TgMessage, who: inbound.Sender, payload: str
    ) -> None:
        """`/start`: a greeting, or with a deep-link token, joining this Telegram user to the
        hub's contact the token names."""
        if not payload or inbound.is_group(message.chat):
            await self.reply(bot, who, say("welcome", who.language))
            return
        link = bot.signer.decode(payload, utcnow())
        if link is None:
            log.info("inbox %s: a /start link that is expired or forged", bot.inbox)
            await self.reply(bot, who, say("bad_link", who.language))
            return
        try:
            await self.ctx.store.write(
                lambda uow: link_identity(uow, link.contact_id, who.identity, bot.inbox)
            )
        except errors.HubError as exc:
            if exc.status >= 500:
                raise
            log.info("inbox %s: deep link not applied: %s", bot.inbox, exc.detail)
            await self.reply(bot, who, say("link_taken", who.language))
            return
        await self.reply(bot, who, say("linked", who.language))

    async def _on_callback(self, bot: InboxBot, query: CallbackQuery) -> None:
        """A pressed inline button: the choice's payload becomes the customer's message on the
        conversation it was offered in (as if typed), and the button stops spinning."""
        parsed = outbound.parse_choice_data(query.data or "")
        chat = query.message.chat if query.message is not None else None
        if chat is not None and inbound.is_group(chat):
            identity = Identity(CHANNEL, str(chat.id))
        else:
            identity = Identity(CHANNEL, str(query.from_user.id))
        found = None
        if parsed is not None:
            found = await self.ctx.store.read(lambda uow: choice_for(uow, *parsed, identity))
        if found is None:
            await self._answer(
                bot, query, say("choice_gone", inbound.language(query.from_user.language_code))
            )
            return
        conversation_id, choice = found
        await self.ctx.sink.receive(
            InboundMessage(
                channel=CHANNEL,
                inbox=bot.inbox,
                sender=identity,
                text=choice.payload,
                channel_message_id=f"{bot.inbox}:cb:{query.id}",
                sender_name=inbound.user_name(query.from_user),
                language=inbound.language(query.from_user.language_code),
                conversation_id=conversation_id,
                raw=query.to_dict(),
            )
        )
        await self._answer(bot, query, None)

    async def _answer(self, bot: InboxBot, query: CallbackQuery, text: str | None) -> None:
        try:
            await bot.app.bot.answer_callback_query(query.id, text=text)
        except TelegramError as exc:  # too old to answer: the choice is stored all the same
            log.info("inbox %s: answerCallbackQuery failed: %s", bot.inbox, exc)

    async def reply(self, bot: InboxBot, who: inbound.Sender, text: str) -> None:
        """A short notice from the channel itself (not stored: it is not conversation)."""
        await bot.limiter.wait(who.chat_id)
        try:
            await bot.app.bot.send_message(who.chat_id, text)
        except TelegramError as exc:
            log.info("inbox %s: could not tell chat %s: %s", bot.inbox, who.chat_id, exc)
