"""The media half of a WebRTC call (channels.phone.webrtc): the hub's outgoing voice and one
call as a `hub.calls.media.MediaSession` over an aiortc peer connection.

The session rate is 16000 Hz: every recogniser the hub runs (Vosk) wants 16 kHz, speech
carries nothing useful above 8 kHz, and a third of the samples of 48 kHz halves the work of
every stage between the decoder and the recogniser. aiortc decodes the browser's Opus; PyAV
(libswresample) down-mixes and resamples it here; aiortc's Opus encoder resamples what we
play back to 48 kHz itself.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal

import av
import orjson
from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection
from aiortc.mediastreams import MediaStreamError

from hub.calls.media import DTMF_DIGITS, AudioIn, CallEvent, CallInfo, Dtmf, HangUp, until_hang_up
from hub.http import TokenBucket

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_S = 0.020
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_S)
FRAME_BYTES = FRAME_SAMPLES * 2
MAX_CONTROL_MESSAGE = 256  # data channel messages are tiny JSON objects
CONTROL_LABEL = "call"  # the widget's data channel: keys in, the hub's hang-up out


# --- the hub's voice --------------------------------------------------------------------------


@dataclass(slots=True)
class _Clip:
    pcm: bytes
    done: asyncio.Future[bool]
    offset: int = 0


class Speaker(MediaStreamTrack):
    """The outgoing audio track: queued clips in 20 ms frames at real-time pace, silence when
    idle (so the browser's jitter buffer never starves and restarts)."""

    kind = "audio"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._clock = clock
        self._clips: deque[_Clip] = deque()
        self._start: float | None = None
        self._pts = 0

    def enqueue(self, pcm: bytes) -> asyncio.Future[bool]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        pcm = pcm[: len(pcm) & ~1]
        if not pcm:
            done.set_result(True)
        elif self.readyState != "live":
            done.set_result(False)
        else:
            self._clips.append(_Clip(pcm, done))
        return done

    def clear(self) -> None:
        while self._clips:
            clip = self._clips.popleft()
            if not clip.done.done():
                clip.done.set_result(False)

    def stop(self) -> None:
        self.clear()
        super().stop()

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = self._clock()
        else:
            self._pts += FRAME_SAMPLES
            ahead = self._start + self._pts / SAMPLE_RATE - self._clock()
            if ahead > 0:  # real-time media pacing: the encoder pulls as fast as we answer
                await asyncio.sleep(ahead)
        frame = av.AudioFrame(format="s16", layout="mono", samples=FRAME_SAMPLES)
        frame.planes[0].update(self._next_frame())
        frame.pts = self._pts
        frame.sample_rate = SAMPLE_RATE
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame

    def _next_frame(self) -> bytes:
        out = bytearray()
        while self._clips and len(out) < FRAME_BYTES:
            clip = self._clips[0]
            take = clip.pcm[clip.offset : clip.offset + FRAME_BYTES - len(out)]
            out += take
            clip.offset += len(take)
            if clip.offset >= len(clip.pcm):
                self._clips.popleft()
                if not clip.done.done():
                    clip.done.set_result(True)
        return bytes(out.ljust(FRAME_BYTES, b"\0"))


# --- one call ---------------------------------------------------------------------------------


class WebRtcCall:
    """One browser call as a `hub.calls.media.MediaSession`."""

    def __init__(
        self,
        info: CallInfo,
        session_id: int,
        pc: RTCPeerConnection,
        no_audio_timeout_s: float,
    ) -> None:
        self.info = info
        self.session_id = session_id
        self.pc = pc
        self.speaker = Speaker()
        self._timeout = no_audio_timeout_s
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self._control: RTCDataChannel | None = None
        self._keys = TokenBucket(20, 40)  # a stuck key or a script cannot flood the controller
        self._ended = False
        self._reader: asyncio.Task[None] | None = None
        self._iterated = False
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_state)

    @property
    def ended(self) -> bool:
        return self._ended

    def begin(self) -> None:
        """Start reading the caller's audio (after the answer is made)."""
        self._reader = asyncio.create_task(self._read_audio(), name=f"{self.info.call_id} audio")

    # --- MediaSession ---------------------------------------------------------------------

    async def events(self) -> AsyncIterator[CallEvent]:
        if self._iterated:
            raise RuntimeError("a call's events() may be iterated once")
        self._iterated = True
        async for event in until_hang_up(self._events):
            yield event

    async def play(self, pcm: bytes) -> bool:
        return await self.speaker.enqueue(pcm)

    def stop_playback(self) -> None:
        self.speaker.clear()

    async def hang_up(self) -> None:
        if self._ended:
            return
        # Said on the data channel first so the widget shows "Call ended" at once; the
        # peer connection's close reaches the browser too, later, if the message is lost.
        self._say({"type": "hangup"})
        await self.end("hub", "hung up by the hub")

    # --- ending -------------------------------------------------------------------------------

    async def end(self, by: Literal["caller", "hub", "error"], reason: str) -> None:
        """Finish the call once: the last event is this HangUp; playback resolves False; the
        reader, the tracks and the peer connection are released."""
        if self._ended:
            return
        self._ended = True
        self._events.put_nowait(HangUp(by, reason))
        self.speaker.stop()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        if not self._track.done():
            self._track.cancel()
        await self.pc.close()

    # --- peer events ------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio" and not self._track.done():
            self._track.set_result(track)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != CONTROL_LABEL or self._control is not None:
            log.info("%s: ignoring data channel %r", self.info.call_id, channel.label)
            return
        self._control = channel
        channel.on("message", self._on_control)

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        if state in ("failed", "closed") and not self._ended:
            await self.end("caller", f"peer connection {state}")

    def _on_control(self, message: str | bytes) -> None:
        if self._ended:
            return
        problem = self._key_problem(message)
        if isinstance(problem, Dtmf):
            self._events.put_nowait(problem)
        elif problem:
            log.info("%s: refused keypad message: %s", self.info.call_id, problem)
            self._say({"type": "error", "code": "bad_message", "detail": problem})

    def _key_problem(self, message: str | bytes) -> Dtmf | str:
        if not isinstance(message, str) or len(message) > MAX_CONTROL_MESSAGE:
            return f"send JSON text of at most {MAX_CONTROL_MESSAGE} characters"
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError:
            return "not JSON"
        if not isinstance(data, dict) or data.get("type") != "dtmf":
            return 'expected {"type": "dtmf", "digit": …}'
        digit = data.get("digit")
        if not isinstance(digit, str) or len(digit) != 1 or digit not in DTMF_DIGITS:
            return "a digit is one of 0-9 * # A-D"
        if not self._keys.take():
            return "too many keys at once"
        return Dtmf(digit)

    def _say(self, message: dict[str, Any]) -> None:
        channel = self._control
        if channel is not None and channel.readyState == "open":
            channel.send(orjson.dumps(message).decode())

    # --- the caller's audio ---------------------------------------------------------------

    async def _read_audio(self) -> None:
        """Decoded frames as 16 kHz mono PCM until the browser stops; no frame for the
        timeout (no track, ICE never connecting, a muted sender that sends nothing, a tab
        gone without a goodbye) ends the call with a log line."""
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            track = await asyncio.wait_for(self._track, self._timeout)
            while True:
                frame = await asyncio.wait_for(track.recv(), self._timeout)
                for out in resampler.resample(frame):  # type: ignore[arg-type]
                    self._events.put_nowait(AudioIn(out.to_ndarray().tobytes()))
        except TimeoutError:
            log.warning(
                "%s: no audio from the browser for %g s; ending the call",
                self.info.call_id,
                self._timeout,
            )
            await self.end("error", f"no audio for {self._timeout:g} s")
        except MediaStreamError:
            await self.end("caller", "the browser stopped sending audio")
