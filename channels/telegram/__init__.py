"""The Telegram channel (docs/telegram.md): python-telegram-bot embedded in the hub."""

import os

# python-telegram-bot 22 reports durations (RetryAfter.retry_after, ...) as timedelta once
# opted in, and warns on every read otherwise; the next major version makes it the default.
os.environ.setdefault("PTB_TIMEDELTA", "true")

from channels.telegram.channel import TelegramChannel

__all__ = ["TelegramChannel"]
