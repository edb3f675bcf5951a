"""One Twilio Media Streams call as a `hub.calls.media.MediaSession`.

The transport's reader (channels.phone.twilio) feeds the session what the websocket brings
(`audio`, `dtmf`, `mark`, `end`); the session turns it into call events and owns the way back:
one writer task sends every outbound frame in order, and one player task cuts `play` audio into
20 ms μ-law media frames with a `mark` every 200 ms. Twilio buffers what it is sent and echoes
a mark once the audio before it has played, so the player keeps at most `AHEAD_MARKS` marks
outstanding: the hub is never more than about a second ahead of the caller's ear, and
`stop_playback` (Twilio `clear`) cuts within that.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

import orjson
from aiohttp import web

from hub.calls.audio import pcm_to_ulaw
from hub.calls.media import AudioIn, CallEvent, CallInfo, Dtmf, HangUp, until_hang_up

log = logging.getLogger(__name__)

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz, one byte a sample: what Twilio itself sends
CHUNK_FRAMES = 10  # a mark after every 200 ms of audio sent
AHEAD_MARKS = 5  # at most 1 s sent that Twilio has not yet said it played
# Audio the handler has not read yet; beyond it frames are dropped (a handler that stalls
# for half a minute must not grow the hub's memory without bound).
MAX_QUEUED_AUDIO = 1500  # 30 s of 20 ms frames

# Websocket close codes (RFC 6455): a call the hub ended, a hub going away, a peer that broke
# the protocol, a call that failed on the hub's side.
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_PROTOCOL, CLOSE_ERROR = 1000, 1001, 1008, 1011


class Clock(Protocol):
    """Time for the idle timeout: `now()` in seconds on any fixed origin, and a wait until a
    moment of that clock. Injectable so that tests move time instead of sleeping."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None:
        """Return at `deadline` or later (a manual clock may return early: callers re-check
        `now()`)."""
        ...


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))


@dataclass(eq=False)
class _Play:
    ulaw: bytes
    done: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def resolve(self, played: bool) -> None:
        if not self.done.done():
            self.done.set_result(played)


class TwilioSession:
    """A live call on one Media Streams websocket (see the module docstring)."""

    def __init__(
        self,
        info: CallInfo,
        stream_sid: str,
        call_sid: str,
        ws: web.WebSocketResponse,
        clock: Clock,
        idle_timeout: float,
    ):
        self.info = info
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self._ws = ws
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._dropped = 0
        self.ended: HangUp | None = None
        self._last_audio = clock.now()
        # Outbound frames, sent in order by `_write`; `stop_playback` empties it.
        self._out: deque[str] = deque()
        self._out_ready = asyncio.Event()
        self._plays: deque[_Play] = deque()
        self._play_ready = asyncio.Event()
        self._current: _Play | None = None
        # Marks sent and not yet echoed, oldest first -> the play they finish (None: mid-play).
        self._marks: dict[str, _Play | None] = {}
        self._mark_back = asyncio.Event()
        self._mark_ids = itertools.count(1)
        self._generation = 0
        self._closing: asyncio.Task[bool] | None = None
        self._tasks = [
            asyncio.create_task(self._write(), name=f"omnihub-twilio-write-{stream_sid}"),
            asyncio.create_task(self._player(), name=f"omnihub-twilio-play-{stream_sid}"),
            asyncio.create_task(self._watch(), name=f"omnihub-twilio-idle-{stream_sid}"),
        ]

    # --- MediaSession -------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[CallEvent]:
        async for event in until_hang_up(self._events):
            yield event

    async def play(self, pcm: bytes) -> bool:
        if self.ended is not None:
            return False
        ulaw = pcm_to_ulaw(pcm)
        if not ulaw:
            return True
        play = _Play(ulaw)
        self._plays.append(play)
        self._play_ready.set()
        return await asyncio.shield(play.done)

    def stop_playback(self) -> None:
        if self.ended is not None:
            return
        pending = bool(self._plays or self._marks or self._current)
        self._cut()
        if pending:
            self._out.append(self._frame({"event": "clear"}))
            self._out_ready.set()

    async def hang_up(self) -> None:
        self.end("hub", "hung up by the hub", CLOSE_NORMAL)
        await self.closed()

    # --- fed by the transport's reader --------------------------------------------------------

    def audio(self, pcm: bytes) -> None:
        """The caller's audio (already PCM)."""
        if self.ended is not None:
            return
        self._last_audio = self._clock.now()
        if self._events.qsize() >= MAX_QUEUED_AUDIO:
            self._dropped += 1
            if self._dropped == 1:
                log.warning(
                    "call %s: the handler is not reading; dropping audio", self.info.call_id
                )
            return
        self._events.put_nowait(AudioIn(pcm))

    def dtmf(self, digit: str) -> None:
        if self.ended is None:
            self._events.put_nowait(Dtmf(digit))

    def mark(self, name: str) -> None:
        """Twilio played everything up to mark `name` (marks come back in the order sent, so
        every older one has played too)."""
        if name not in self._marks:
            return  # one a `clear` returned, or not ours
        for sent in list(self._marks):
            play = self._marks.pop(sent)
            if play is not None:
                play.resolve(True)
            if sent == name:
                break
        self._mark_back.set()

    def end(self, by: Literal["caller", "hub", "error"], reason: str, code: int) -> None:
        """End the call once: the handler gets `HangUp(by, reason)`, pending plays resolve
        False, the socket is closed with `code`. Later calls do nothing."""
        if self.ended is not None:
            return
        self.ended = HangUp(by, reason)
        log_at = logging.WARNING if by == "error" else logging.INFO
        log.log(log_at, "call %s ended (%s): %s", self.info.call_id, by, reason)
        self._cut()
        self._events.put_nowait(self.ended)
        for task in self._tasks:
            task.cancel()
        if not self._ws.closed:
            message = reason.encode()[:120]  # a close reason is limited to 123 bytes
            self._closing = asyncio.create_task(self._ws.close(code=code, message=message))

    async def closed(self) -> None:
        """Wait until the session's tasks and its socket are done."""
        pending = [*self._tasks, *([self._closing] if self._closing else [])]
        await asyncio.gather(*pending, return_exceptions=True)

    # --- the way back -------------------------------------------------------------------------

    def _frame(self, body: dict[str, object]) -> str:
        return orjson.dumps({**body, "streamSid": self.stream_sid}).decode()

    def _cut(self) -> None:
        """Drop every play not yet played; each resolves False."""
        self._generation += 1
        for play in (*self._plays, *(p for p in self._marks.values() if p), self._current):
            if play is not None:
                play.resolve(False)
        self._plays.clear()
        self._marks.clear()
        self._current = None
        self._out.clear()
        self._mark_back.set()

    async def _player(self) -> None:
        while True:
            while not self._plays:
                self._play_ready.clear()
                await self._play_ready.wait()
            play = self._current = self._plays.popleft()
            generation = self._generation
            step = FRAME_BYTES * CHUNK_FRAMES
            for offset in range(0, len(play.ulaw), step):
                while len(self._marks) >= AHEAD_MARKS and generation == self._generation:
                    self._mark_back.clear()
                    await self._mark_back.wait()
                if generation != self._generation:
                    break  # cleared while waiting for Twilio to catch up
                chunk = play.ulaw[offset : offset + step]
                for at in range(0, len(chunk), FRAME_BYTES):
                    payload = base64.b64encode(chunk[at : at + FRAME_BYTES]).decode()
                    self._out.append(self._frame({"event": "media", "media": {"payload": payload}}))
                name = f"omnihub-{next(self._mark_ids)}"
                last = offset + step >= len(play.ulaw)
                self._marks[name] = play if last else None
                self._out.append(self._frame({"event": "mark", "mark": {"name": name}}))
                self._out_ready.set()
            if generation == self._generation:
                self._current = None

    async def _write(self) -> None:
        while True:
            while not self._out:
                self._out_ready.clear()
                await self._out_ready.wait()
            frame = self._out.popleft()
            try:
                await self._ws.send_str(frame)
            except (ConnectionError, RuntimeError) as exc:
                self.end("error", f"sending to the websocket failed: {exc}", CLOSE_ERROR)
                return

    async def _watch(self) -> None:
        while True:
            deadline = self._last_audio + self._idle_timeout
            await self._clock.sleep_until(deadline)
            if self._clock.now() - self._last_audio >= self._idle_timeout:
                self.end("error", f"no audio for {self._idle_timeout:g} s", CLOSE_ERROR)
                return
