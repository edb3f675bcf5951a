"""The live media session every call transport implements, and the call control the hub
hands the transports.

Audio on this port is always 16-bit signed little-endian mono PCM at the session's
`CallInfo.sample_rate` (8000 for G.711 trunks and Twilio, 16000 or 48000 where the transport
decodes a wideband codec). Each transport converts to and from its codec at its edge
(`hub.calls.audio`), so the call controller, the recogniser and the synthesiser never see a
codec.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from hub.model import Conversation, Message
from hub.ports import SendResult

Transport = Literal["sip", "twilio", "webrtc"]
DTMF_DIGITS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who calls whom, over what: fixed when the call is answered."""

    call_id: str  # unique across transports: "sip:<Call-ID>", "twilio:<streamSid>", "webrtc:<id>"
    transport: Transport
    caller: str  # E.164 ("+8613800138000") where the transport knows a number, else its address
    dialled: str  # the number or address called; picks the inbound rule
    sample_rate: int  # of the PCM in `AudioIn` and given to `play`
    contact_id: int | None = None  # known already (a web call from a widget session)
    conversation_id: int | None = None  # the widget conversation a web call started from
    language: str | None = None  # a hint (the widget's UI language), "en" or "zh"
    params: Mapping[str, str] = field(default_factory=dict)  # Twilio customParameters, SIP headers


@dataclass(frozen=True, slots=True)
class AudioIn:
    """A few milliseconds (typically 20) of the caller's audio."""

    pcm: bytes


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A keypad press (RFC 4733 event, Twilio `dtmf`, the widget keypad)."""

    digit: str  # one of DTMF_DIGITS


@dataclass(frozen=True, slots=True)
class HangUp:
    """The call ended; always the last event of a session."""

    by: Literal["caller", "hub", "error"]
    reason: str = ""  # for the log: "BYE", "stop", "websocket closed", "no audio for 30 s"


CallEvent = AudioIn | Dtmf | HangUp


class MediaSession(Protocol):
    """One live call as the call controller drives it.

    `events()` yields the caller's audio, keypad presses and finally one `HangUp`; it may be
    iterated once. `play` and `stop_playback` may be called while `events()` is being read
    (barge-in). A transport never raises out of these methods for a peer that misbehaves or
    disappears: it ends the session with `HangUp(by="error" | "caller")` instead.
    """

    info: CallInfo

    def events(self) -> AsyncIterator[CallEvent]: ...

    async def play(self, pcm: bytes) -> bool:
        """Queue `pcm` behind what is already queued and play it out at real-time pace.

        Resolves True once the last sample has been played to the caller (Twilio: its `mark`
        came back), False when `stop_playback` cut it or the call ended first.
        """
        ...

    def stop_playback(self) -> None:
        """Drop everything queued and not yet played (Twilio `clear`); pending `play` calls
        resolve False. Idempotent."""
        ...

    async def hang_up(self) -> None:
        """End the call from the hub's side (SIP BYE, websocket close, peer connection
        close); the session then yields `HangUp(by="hub")`. Idempotent."""
        ...


async def until_hang_up(queue: asyncio.Queue[CallEvent]) -> AsyncIterator[CallEvent]:
    """A transport's queued events as `MediaSession.events()` yields them: up to and
    including the one `HangUp`."""
    while True:
        event = await queue.get()
        yield event
        if isinstance(event, HangUp):
            return


CallHandler = Callable[[MediaSession], Awaitable[None]]
"""Runs one answered call to its end; the transport hangs up when it returns."""


class CallControl(Protocol):
    """What the hub gives the phone channel: the call controller."""

    async def handle(self, session: MediaSession) -> None:
        """Run the call: inbound rule, flow, bot, queue, relay to an agent, voicemail; return
        when the call is over. Never raises for anything the caller or transport did."""
        ...

    async def deliver(self, conversation: Conversation, message: Message) -> SendResult:
        """Speak an outbound message (bot answer, agent reply, CSAT question, its choices
        as a keypad menu) into the live call of `conversation`. Raises
        `hub.ports.ChannelSendError(retryable=False)` when no call is live for it."""
        ...
