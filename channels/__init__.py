"""Channel adapters. Adding a channel = one module here + one line in REGISTRY."""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:Class"; imported lazily so a channel's dependencies load only when enabled.
REGISTRY: dict[str, str] = {
    "webchat": "channels.webchat:WebchatChannel",
    "telegram": "channels.telegram:TelegramChannel",  # docs/telegram.md
    "email": "channels.email:EmailChannel",  # fax-to-email too (docs/email.md)
    "voice": "channels.phone:PhoneChannel",  # SIP, Twilio Media Streams, WebRTC (docs/phone.md)
}


def channel_class(name: str) -> Any:
    """The adapter class registered under `name` (KeyError names the unknown channel)."""
    try:
        target = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}; known: {', '.join(sorted(REGISTRY))}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
