"""Sending to Telegram: rate limits, inline keyboards for choices, media, and what each Bot
API error means for the durable outbox."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from aiolimiter import AsyncLimiter
from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.warnings import PTBDeprecationWarning

from hub import formatting
from hub.model import Attachment, Message
from hub.ports import ChannelSendError

MAX_TEXT = 4096  # Telegram's limit on one message's text
MAX_BUTTON_TEXT = 60
MAX_PHOTO_BYTES = 10 * 1024**2  # larger pictures go as documents
PHOTO_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
SHORT_BUTTONS = 4  # choices this short (a 1-5 rating, yes/no) share one keyboard row
MAX_CHATS_TRACKED = 10_000


class SendLimiter:
    """Telegram's flood limits for one bot: an overall rate and a rate per chat (groups get
    20 a minute). Waiting here is cheaper than a 429 and its penalty."""

    def __init__(self, rate_per_s: float, chat_rate_per_s: float):
        self._overall = AsyncLimiter(rate_per_s, 1)
        self._chat_rate = chat_rate_per_s
        self._chats: OrderedDict[int, AsyncLimiter] = OrderedDict()

    async def wait(self, chat_id: int) -> None:
        limiter = self._chats.get(chat_id)
        if limiter is None:
            group = chat_id < 0  # Telegram's group and channel ids are negative
            limiter = AsyncLimiter(20, 60) if group else AsyncLimiter(1, 1 / self._chat_rate)
            self._chats[chat_id] = limiter
            if len(self._chats) > MAX_CHATS_TRACKED:
                self._chats.popitem(last=False)  # the least recently active chat
        else:
            self._chats.move_to_end(chat_id)
        await limiter.acquire()
        await self._overall.acquire()


@dataclass(frozen=True, slots=True)
class Part:
    """One Bot API call of an outbound message: a text chunk or a file."""

    kind: Literal["text", "photo", "document"]
    text: str = ""  # Telegram HTML (parse mode HTML)
    attachment: Attachment | None = None
    keyboard: InlineKeyboardMarkup | None = None


def choice_data(conversation_id: int, message_id: int, index: int) -> str:
    """The callback data of a choice button: which conversation, message and choice (Telegram
    allows 64 bytes, too few for the payloads, so the payload is looked up on the message)."""
    return f"c:{conversation_id}:{message_id}:{index}"


def parse_choice_data(data: str) -> tuple[int, int, int] | None:
    fields = data.split(":")
    if len(fields) != 4 or fields[0] != "c" or not all(f.isdigit() for f in fields[1:]):
        return None
    return int(fields[1]), int(fields[2]), int(fields[3])


def keyboard(message: Message) -> InlineKeyboardMarkup | None:
    if not message.choices:
        return None
    buttons = [
        InlineKeyboardButton(
            _button_text(c.title), callback_data=choice_data(message.conversation_id, message.id, i)
        )
        for i, c in enumerate(message.choices)
    ]
    if all(len(c.title) <= SHORT_BUTTONS for c in message.choices):
        return InlineKeyboardMarkup([buttons])
    return InlineKeyboardMarkup([[b] for b in buttons])


def _button_text(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= MAX_BUTTON_TEXT else title[: MAX_BUTTON_TEXT - 1] + "…"


def parts(message: Message) -> list[Part]:
    """The calls that deliver `message`, in order: its text in Telegram's HTML (parse mode
    HTML, split at Telegram's limit between blocks, the keyboard on the last piece), then each
    attachment as a photo or a document."""
    chunks = formatting.telegram_chunks(message.text, message.format, MAX_TEXT)
    out = [Part("text", chunk) for chunk in chunks]
    if out and message.choices:
        out[-1] = Part("text", out[-1].text, keyboard=keyboard(message))
    for a in message.attachments:
        photo = a.content_type in PHOTO_TYPES and a.size <= MAX_PHOTO_BYTES
        out.append(Part("photo" if photo else "document", attachment=a))
    return out


def retry_after_seconds(exc: RetryAfter) -> float:
    # A timedelta with PTB_TIMEDELTA on (channels.telegram sets it); seconds otherwise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def send_error(exc: TelegramError) -> ChannelSendError:
    """What a Bot API error means for the outbox: wait as told, retry later, or give up."""
    if isinstance(exc, RetryAfter):
        seconds = retry_after_seconds(exc)
        return ChannelSendError(
            f"Telegram flood control: retry after {seconds:g} s", retry_after=seconds
        )
    if isinstance(exc, Forbidden):
        return ChannelSendError(
            f"the customer cannot be reached on Telegram (blocked the bot or left the chat):"
            f" {exc.message}",
            retryable=False,
        )
    if isinstance(exc, (BadRequest, InvalidToken, ChatMigrated)):
        return ChannelSendError(f"Telegram refused the message: {exc.message}", retryable=False)
    if isinstance(exc, NetworkError):  # also TimedOut
        return ChannelSendError(f"Telegram could not be reached: {exc.message}")
    return ChannelSendError(f"Telegram error: {exc.message}")
