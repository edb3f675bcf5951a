"""One inbox's bot: its python-telegram-bot Application (no Updater), secret, link signer and
send limiter."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta

from telegram.ext import Application, ApplicationBuilder

from channels.telegram.linking import LinkSigner
from channels.telegram.options import InboxOptions, TelegramOptions
from channels.telegram.outbound import SendLimiter


@dataclass
class InboxBot:
    """One inbox's bot and its running state."""

    inbox: str
    options: InboxOptions
    app: Application
    secret: str  # what every webhook request must carry
    signer: LinkSigner
    limiter: SendLimiter
    ready: asyncio.Event = field(default_factory=asyncio.Event)  # connected (getMe done)
    task: asyncio.Task[None] | None = None  # connecting, then polling


def build_bot(inbox: str, options: InboxOptions, channel: TelegramOptions) -> InboxBot:
    """The bot, not yet connected (no I/O here)."""
    app = (
        ApplicationBuilder()
        .token(options.token)
        .base_url(channel.base_url)
        .base_file_url(channel.base_file_url)
        .updater(None)  # updates come from the hub's own web server or its polling task
        .build()
    )
    return InboxBot(
        inbox=inbox,
        options=options,
        app=app,
        secret=options.webhook_secret or derived_secret(options.token),
        signer=LinkSigner(options.token, inbox, timedelta(hours=channel.link_ttl_hours)),
        limiter=SendLimiter(channel.rate_per_s, channel.chat_rate_per_s),
    )


def derived_secret(token: str) -> str:
    """The webhook secret when none is configured: the same in every process and across
    restarts, and unguessable without the bot token."""
    return hmac.new(token.encode(), b"omnihub-telegram-webhook", hashlib.sha256).hexdigest()
