"""One answered SIP call as a `hub.calls.media.MediaSession`: its RTP socket, the caller's
audio and keypad presses as events, our audio paced out at 20 ms, and its end.

Everything runs on the event loop (no threads): one datagram endpoint and three small tasks
per call (the 20 ms sender, the no-audio watchdog, the 200 OK retransmission until ACK), all
gone when the call ends, whoever ends it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal

from hub.calls.audio import pcm_to_ulaw, ulaw_to_pcm
from hub.calls.media import AudioIn, CallEvent, CallInfo, Dtmf, HangUp

from .rtp_events import (
    FRAME_SAMPLES,
    ULAW_SILENCE,
    DtmfEvents,
    SdpOffer,
    build_rtp,
    parse_rtp,
)

log = logging.getLogger(__name__)

FRAME_S = FRAME_SAMPLES / 8000
MAX_QUEUED_PLAYS = 32  # prompts waiting behind the one playing; more is a runaway caller
MAX_EVENTS = 1500  # 30 s of 20 ms frames waiting for a slow reader; older audio is dropped
T1, T2, TIMER_H = 0.5, 4.0, 32.0  # RFC 3261 17.1.1.1 / 13.3.1.4: 200 OK retransmission


@dataclass(slots=True)
class _Play:
    frames: list[bytes]
    done: asyncio.Future[bool]


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, call: SipCall) -> None:
        self.call = call

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.call._rtp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: the watchdog ends the call.
        log.debug("%s: RTP error %s", self.call.info.call_id, exc)


class SipCall:
    """A live SIP call; `SipTransport` builds it when it answers an INVITE."""

    def __init__(
        self,
        info: CallInfo,
        offer: SdpOffer,
        rtp_sock: socket.socket,
        *,
        signalling_peer: str,
        rtp_timeout_s: float,
        send_ok: Callable[[], None],
        send_bye: Callable[[], None],
        on_closed: Callable[[SipCall], None],
    ) -> None:
        self.info = info
        self.offer = offer
        self.rtp_port: int = rtp_sock.getsockname()[1]
        self._sock = rtp_sock
        self._peer_ips = {offer.address, signalling_peer}
        self._remote = (offer.address, offer.port)
        self._latched = False
        self._timeout = rtp_timeout_s
        self._send_ok = send_ok
        self._send_bye = send_bye
        self._on_closed = on_closed
        self._events: deque[CallEvent] = deque()
        self._wake = asyncio.Event()
        self._dropped = 0
        self._dtmf = DtmfEvents()
        self._plays: deque[_Play] = deque()
        self._playing: _Play | None = None
        self._frame = 0
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._ssrc = random.randrange(1 << 32)
        self._loop = asyncio.get_running_loop()
        self._last_heard = self._loop.time()
        self._acked = asyncio.Event()
        self._ended: HangUp | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Start receiving RTP on the bound socket and sending ours; retransmit the 200 OK
        until the caller's ACK."""
        if self._ended is not None:  # CANCELled before its task ran: the socket is closed
            return
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _Rtp(self), sock=self._sock
        )
        if self._ended is not None:  # the caller hung up while the endpoint was made
            transport.close()
            return
        self._transport = transport
        name = self.info.call_id
        self._tasks = [
            asyncio.create_task(self._sender(), name=f"{name} rtp out"),
            asyncio.create_task(self._watchdog(), name=f"{name} watchdog"),
            asyncio.create_task(self._until_acked(), name=f"{name} 200 OK"),
        ]

    @property
    def ended(self) -> bool:
        return self._ended is not None

    def acked(self) -> None:
        self._acked.set()

    def end(self, by: Literal["caller", "hub", "error"], reason: str) -> None:
        """End the call once: BYE unless the caller ended it, close the RTP socket, fail the
        pending plays, and queue the session's last event."""
        if self._ended is not None:
            return
        self._ended = HangUp(by=by, reason=reason)
        log.info("%s ended by %s: %s", self.info.call_id, by, reason)
        if by != "caller":
            self._send_bye()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._transport is not None:
            self._transport.close()
        else:
            self._sock.close()
        self.stop_playback()
        self._push(self._ended)
        self._on_closed(self)

    async def _until_acked(self) -> None:
        interval, waited = T1, 0.0
        while waited < TIMER_H:
            try:
                await asyncio.wait_for(self._acked.wait(), interval)
                return
            except TimeoutError:
                waited += interval
                interval = min(interval * 2, T2)
                self._send_ok()
        self.end("error", f"no ACK for the 200 OK within {TIMER_H:g} s")

    async def _watchdog(self) -> None:
        while True:
            if not self.offer.sends_audio:  # on hold: silence is expected
                self._last_heard = self._loop.time()
            left = self._last_heard + self._timeout - self._loop.time()
            if left <= 0:
                self.end("error", f"no audio for {self._timeout:g} s")
                return
            await asyncio.sleep(left)

    def update(self, offer: SdpOffer) -> None:
        """A re-INVITE's new offer: where to send audio now, hold or resume."""
        self.offer = offer
        self._peer_ips.add(offer.address)
        if not self._latched or offer.address != self._remote[0]:
            self._remote, self._latched = (offer.address, offer.port), False
        self._last_heard = self._loop.time()

    # -- caller to hub -----------------------------------------------------------------------

    def _push(self, event: CallEvent) -> None:
        if len(self._events) >= MAX_EVENTS:
            self._events.popleft()
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "%s: events read too slowly; dropping the oldest audio", self.info.call_id
                )
        self._events.append(event)
        self._wake.set()

    def dtmf(self, digit: str) -> None:
        if self._ended is None:
            self._push(Dtmf(digit))

    def _rtp_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._ended is not None or addr[0] not in self._peer_ips:
            return
        packet = parse_rtp(data)
        if packet is None:
            return
        self._last_heard = self._loop.time()
        if not self._latched:  # symmetric RTP: answer where the audio comes from (NAT)
            self._remote, self._latched = addr, True
        if packet.payload_type == self.offer.pcmu:
            self._push(AudioIn(ulaw_to_pcm(packet.payload)))
        elif packet.payload_type == self.offer.telephone_event:
            digit = self._dtmf.feed(packet)
            if digit is not None:
                self._push(Dtmf(digit))
        # comfort noise and anything else negotiated elsewhere: kept the call alive, no audio

    async def _iterate(self) -> AsyncIterator[CallEvent]:
        while True:
            while self._events:
                event = self._events.popleft()
                yield event
                if isinstance(event, HangUp):
                    return
            self._wake.clear()
            await self._wake.wait()

    def events(self) -> AsyncIterator[CallEvent]:
        """The caller's audio (8000 Hz PCM16), keypad presses, then one HangUp."""
        return self._iterate()

    # -- hub to caller -----------------------------------------------------------------------

    async def play(self, pcm: bytes) -> bool:
        """Queue 8000 Hz PCM16 behind what is queued; True once its last frame is sent."""
        if self._ended is not None:
            return False
        if len(self._plays) >= MAX_QUEUED_PLAYS:
            log.warning(
                "%s: %d prompts already queued; not playing another",
                self.info.call_id,
                len(self._plays),
            )
            return False
        ulaw = pcm_to_ulaw(pcm)
        frames = [ulaw[i : i + FRAME_SAMPLES] for i in range(0, len(ulaw), FRAME_SAMPLES)]
        if not frames:
            return True
        frames[-1] = frames[-1].ljust(FRAME_SAMPLES, ULAW_SILENCE[:1])
        item = _Play(frames, self._loop.create_future())
        self._plays.append(item)
        return await item.done

    def stop_playback(self) -> None:
        """Drop what is queued and playing; their `play` calls return False."""
        pending = ([self._playing] if self._playing else []) + list(self._plays)
        self._playing, self._frame = None, 0
        self._plays.clear()
        for item in pending:
            if not item.done.done():
                item.done.set_result(False)

    def _next_frame(self) -> bytes:
        if self._playing is None and self._plays:
            self._playing, self._frame = self._plays.popleft(), 0
        if self._playing is None:
            return ULAW_SILENCE
        frame = self._playing.frames[self._frame]
        self._frame += 1
        if self._frame == len(self._playing.frames):
            if not self._playing.done.done():
                self._playing.done.set_result(True)
            self._playing = None
        return frame

    async def _sender(self) -> None:
        # Silence when there is nothing to say keeps NAT bindings and the peer's jitter
        # buffer alive, as a phone does; a fixed 20 ms clock that skips ahead, rather than
        # bursting, after the loop was busy.
        next_at = self._loop.time()
        first = True
        while self._transport is not None and not self._transport.is_closing():
            frame = self._next_frame()  # the clock runs on hold too: prompts keep their pace
            if self.offer.receives_audio:
                packet = build_rtp(
                    self.offer.pcmu or 0, self._seq, self._ts, self._ssrc, frame, marker=first
                )
                self._transport.sendto(packet, self._remote)
                first = False
            self._seq += 1
            self._ts += FRAME_SAMPLES
            next_at += FRAME_S
            now = self._loop.time()
            if next_at < now - 0.2:
                next_at = now
            await asyncio.sleep(max(0.0, next_at - now))

    async def hang_up(self) -> None:
        """End the call from the hub (BYE); idempotent."""
        self.end("hub", "hang up")
