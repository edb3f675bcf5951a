"""The phone channel (docs/phone.md): live calls over SIP + RTP, Twilio Media Streams and
WebRTC, each a transport that turns its protocol into a `hub.calls.media.MediaSession` and
hands it to the hub's call controller.

Settings live under `channels.voice`, one table per transport; a transport runs when its
table is present:

    [channels.voice.sip]      # docs/phone.md: pointing a PBX trunk or a softphone at the hub
    [channels.voice.twilio]   # a Twilio / Telnyx number's Media Stream
    [channels.voice.webrtc]   # "Call us" in the web widget
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from hub.calls.media import CallHandler
from hub.errors import ConfigError
from hub.http import Handler
from hub.model import Conversation, Message
from hub.ports import ChannelContext, ChannelSendError, SendResult

# transport name -> "module:Class"; imported only when configured (aiortc, voip-utils).
TRANSPORTS: dict[str, str] = {
    "sip": "channels.phone.sip:SipTransport",
    "twilio": "channels.phone.twilio:TwilioTransport",
    "webrtc": "channels.phone.webrtc:WebRtcTransport",
}


class CallTransport(Protocol):
    """One way calls reach the hub. Built with its own settings table and the channel context;
    `start` begins answering calls, each handed to `handler` in a task of its own."""

    name: ClassVar[str]

    def __init__(self, options: dict[str, Any], ctx: ChannelContext) -> None: ...

    def handlers(self) -> Sequence[Handler]:
        """HTTP and websocket endpoints it serves (Twilio's stream, WebRTC's offer)."""
        ...

    async def start(self, handler: CallHandler) -> None: ...

    async def stop(self) -> None:
        """Stop answering; hang up the calls still live."""
        ...


def transport_class(name: str) -> type[CallTransport]:
    try:
        target = TRANSPORTS[name]
    except KeyError:
        raise ConfigError(
            f"channels.voice.{name}: unknown call transport; known: {', '.join(sorted(TRANSPORTS))}"
        ) from None
    module, _, cls = target.partition(":")
    found: type[CallTransport] = getattr(importlib.import_module(module), cls)
    return found


class PhoneChannel:
    """The `voice` channel: answers calls on every configured transport and speaks outbound
    messages (bot answers, agent replies) into the live call through the call controller."""

    name: ClassVar[str] = "voice"

    def __init__(self, ctx: ChannelContext):
        self.ctx = ctx
        self.transports: list[CallTransport] = []
        for name, options in ctx.options.items():
            if not isinstance(options, dict):
                raise ConfigError(f"channels.voice.{name}: expected a table of settings")
            self.transports.append(transport_class(name)(dict(options), ctx))

    def handlers(self) -> Sequence[Handler]:
        return [h for t in self.transports for h in t.handlers()]

    async def start(self) -> None:
        if self.ctx.calls is None:
            raise ConfigError("channels.voice: the hub has no call controller to run calls")
        for transport in self.transports:
            await transport.start(self.ctx.calls.handle)

    async def stop(self) -> None:
        for transport in reversed(self.transports):
            await transport.stop()

    async def send(self, conversation: Conversation, message: Message) -> SendResult:
        if self.ctx.calls is None:
            raise ChannelSendError("no call controller", retryable=False)
        return await self.ctx.calls.deliver(conversation, message)
