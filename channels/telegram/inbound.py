"""Reading Telegram messages into the hub's terms: who wrote, in which language, what file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from telegram import Chat, Message, User

from hub.model import Identity

CHANNEL = "telegram"
MediaKind = Literal["photo", "document", "voice", "audio", "video"]


@dataclass(frozen=True, slots=True)
class Sender:
    """Whom a message comes from in the hub: the Telegram user in a private chat, the group
    itself in a group chat (replies go back to the chat, where the whole group reads them)."""

    identity: Identity
    name: str
    language: str | None
    chat_id: int


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A file a message carries, before it is downloaded."""

    kind: MediaKind
    file_id: str
    size: int | None
    filename: str
    content_type: str


def user_name(user: User) -> str:
    """First and last name, else the @username, else the numeric id."""
    full = " ".join(p for p in (user.first_name, user.last_name) if p and p.strip()).strip()
    if full:
        return full
    return f"@{user.username}" if user.username else f"Telegram {user.id}"


def language(code: str | None) -> str | None:
    """A Telegram `language_code` (IETF tag) in the hub's spelling: zh-* is "zh-CN" (the
    hub's Chinese UI), otherwise the primary subtag ("en-GB" -> "en", "ko" -> "ko")."""
    if not code:
        return None
    primary = code.strip().lower().replace("_", "-").split("-", 1)[0]
    if primary == "zh":
        return "zh-CN"
    return primary if primary.isalpha() and len(primary) <= 8 else None


def is_group(chat: Chat) -> bool:
    return chat.type in (Chat.GROUP, Chat.SUPERGROUP)


def sender(message: Message) -> Sender | None:
    """None for messages that have no person behind them (channel posts)."""
    user = message.from_user
    chat = message.chat
    if user is None or user.is_bot:
        return None
    if is_group(chat):
        title = chat.title or f"Telegram group {chat.id}"
        return Sender(Identity(CHANNEL, str(chat.id)), title, language(user.language_code), chat.id)
    return Sender(
        Identity(CHANNEL, str(user.id)), user_name(user), language(user.language_code), chat.id
    )


def start_payload(message: Message) -> str | None:
    """The deep-link parameter of a `/start <payload>` command; "" for a bare /start; None
    when the message is not /start."""
    text = message.text or ""
    command, _, rest = text.partition(" ")
    if command.split("@", 1)[0] != "/start":
        return None
    return rest.strip()


def media(message: Message, limit: int) -> MediaRef | None:
    """The file a message carries. For photos, the largest size Telegram offers within
    `limit` (a photo comes in several sizes); otherwise the file itself, whatever its size
    (the caller refuses one over the limit)."""
    unique = message.message_id
    if message.photo:
        fitting = [p for p in message.photo if p.file_size is None or p.file_size <= limit]
        best = fitting[-1] if fitting else message.photo[-1]
        return MediaRef("photo", best.file_id, best.file_size, f"photo-{unique}.jpg", "image/jpeg")
    if message.voice:
        v = message.voice
        mime = v.mime_type or "audio/ogg"
        return MediaRef("voice", v.file_id, v.file_size, f"voice-{unique}.ogg", mime)
    if message.audio:
        a = message.audio
        name = a.file_name or f"audio-{unique}"
        return MediaRef("audio", a.file_id, a.file_size, name, a.mime_type or "audio/mpeg")
    if message.video:
        vid = message.video
        name = vid.file_name or f"video-{unique}.mp4"
        return MediaRef("video", vid.file_id, vid.file_size, name, vid.mime_type or "video/mp4")
    if message.document:
        d = message.document
        name = d.file_name or f"document-{unique}"
        mime = d.mime_type or "application/octet-stream"
        return MediaRef("document", d.file_id, d.file_size, name, mime)
    return None
