"""WebRTC calls from the web widget's "Call us" (docs/phone-webrtc.md).

Signalling is plain HTTP, authenticated by the widget session token like every other
`/api/webchat/*` endpoint, and non-trickle: the browser waits for ICE gathering and posts one
complete SDP offer; the hub answers with one complete SDP answer (aiortc gathers its candidates
inside `setLocalDescription`). Media is aiortc: the caller's Opus is decoded by aiortc and
converted here to 16 kHz mono PCM; the hub's speech goes out through `Speaker`, a track that
paces 20 ms frames in real time and sends silence when there is nothing to say. Keypad presses
and the hub's hang-up travel on a data channel named "call" as small JSON messages.

The session rate is 16000 Hz: every recogniser the hub runs (Vosk) wants 16 kHz, speech
carries nothing useful above 8 kHz, and a third of the samples of 48 kHz halves the work of
every stage between the decoder and the recogniser. aiortc's Opus encoder resamples what we
play to 48 kHz itself.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import av
import orjson
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hub.calls.media import DTMF_DIGITS, AudioIn, CallEvent, CallHandler, CallInfo, Dtmf, HangUp
from hub.config import channel_options
from hub.errors import HubError, InvalidRequest, InvalidToken, NotFound, Unavailable
from hub.http import (
    Handler,
    TokenBucket,
    endpoint,
    json_response,
    loads_json,
    parse,
    read_body,
    read_query,
)
from hub.ports import ChannelContext, WebchatSession
from hub.services.agents import token_hash

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAME_S = 0.020
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_S)
FRAME_BYTES = FRAME_SAMPLES * 2
# A browser's offer with one audio line, a data channel and a few host candidates is 2-6 KB;
# four times that leaves room for many interfaces and still refuses junk before aiortc parses.
MAX_SDP_CHARS = 24 * 1024
MAX_BODY = MAX_SDP_CHARS + 1024
MAX_CONTROL_MESSAGE = 256  # data channel messages are tiny JSON objects
CONTROL_LABEL = "call"
Language = Literal["en", "zh-CN"]


class IceServer(BaseModel):
    """One STUN or TURN server, given to aiortc and to the browser alike."""

    model_config = ConfigDict(extra="forbid")
    urls: list[str] = Field(min_length=1)
    username: str | None = None
    credential: str | None = None

    @field_validator("urls")
    @classmethod
    def _scheme(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"{url!r} is not a stun:, turn: or turns: URL")
        return urls


class WebRtcOptions(BaseModel):
    """`[channels.voice.webrtc]`."""

    model_config = ConfigDict(extra="forbid")
    max_calls: int = Field(20, ge=1, le=1000, description="live web calls at once, hub-wide")
    max_calls_per_session: int = Field(1, ge=1, le=10, description="per widget session")
    no_audio_timeout_s: float = Field(
        15.0, gt=0, le=600, description="end a call whose browser sends no audio this long"
    )
    # Empty: host candidates only, which is right on a LAN and in tests; a hub behind NAT
    # needs STUN, and callers behind strict firewalls need TURN (docs/phone-webrtc.md).
    ice_servers: list[IceServer] = []
    dialled: str = Field("webchat", min_length=1, max_length=64, description="for inbound rules")


class CallRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128)
    sdp: str = Field(min_length=1)
    language: Language | None = None


class CallAnswer(BaseModel):
    call_id: str
    type: Literal["answer"] = "answer"
    sdp: str


class CallSettings(BaseModel):
    """What the widget needs before it offers "Call us"."""

    enabled: bool
    ice_servers: list[IceServer]
    live_calls: int = Field(description="this session's calls in progress")
    max_calls_per_session: int


class TokenQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=128)


def check_offer(sdp: str) -> None:
    """Refuse what cannot be a complete browser offer before aiortc parses it, each with the
    reason (InvalidRequest `bad_sdp`)."""
    if len(sdp) > MAX_SDP_CHARS:
        raise InvalidRequest(f"the SDP is longer than {MAX_SDP_CHARS} characters", code="bad_sdp")
    if not sdp.isascii():
        raise InvalidRequest("the SDP must be ASCII text", code="bad_sdp")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if lines[0].strip() != "v=0":
        raise InvalidRequest("the SDP must start with v=0", code="bad_sdp")
    if not any(line.startswith("m=audio ") for line in lines):
        raise InvalidRequest("the offer has no audio (m=audio)", code="bad_sdp")
    if not any(line.startswith("a=fingerprint:") for line in lines):
        raise InvalidRequest("the offer has no DTLS fingerprint", code="bad_sdp")
    if not any(line.startswith("a=candidate:") for line in lines):
        # Signalling is non-trickle: an offer sent before gathering finished cannot connect.
        raise InvalidRequest(
            "the offer has no ICE candidates; send it after ICE gathering completes",
            code="bad_sdp",
        )


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
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, HangUp):
                return

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


# --- the transport ----------------------------------------------------------------------------


class WebRtcTransport:
    """`channels.voice.webrtc`: answers the widget's calls (CallTransport)."""

    name: ClassVar[str] = "webrtc"

    def __init__(self, options: dict[str, Any], ctx: ChannelContext) -> None:
        self.options = channel_options(WebRtcOptions, options, "voice.webrtc")
        self.ctx = ctx
        self._handler: CallHandler | None = None
        self._calls: dict[str, WebRtcCall] = {}  # by the id in the URL
        self._runs: set[asyncio.Task[None]] = set()
        self._per_session: Counter[int] = Counter()

    @property
    def live_calls(self) -> int:
        """Calls not yet released (for tests and the health of the transport)."""
        return len(self._calls)

    def handlers(self) -> Sequence[Handler]:
        return [self.call_settings, self.start_call, self.end_call]

    async def start(self, handler: CallHandler) -> None:
        self._handler = handler

    async def stop(self) -> None:
        self._handler = None
        for call in list(self._calls.values()):
            await call.hang_up()
        if self._runs:
            # The handlers saw HangUp; give them a moment to write their last events.
            _done, pending = await asyncio.wait(self._runs, timeout=5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _session(self, token: str) -> WebchatSession:
        hashed = token_hash(token)
        found = await self.ctx.store.read(lambda uow: uow.webchat_session(hashed))
        if found is None:
            raise InvalidToken("unknown or expired web chat token")
        return found

    @endpoint(
        "GET",
        "/api/webchat/calls",
        "Whether this widget session may call, and the ICE servers its browser should use",
        tags=("webchat", "voice"),
        query=TokenQuery,
        response=CallSettings,
        errors=(401, 422),
    )
    async def call_settings(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(read_query(request, TokenQuery).token)
        return json_response(
            CallSettings(
                enabled=self._handler is not None,
                ice_servers=self.options.ice_servers,
                live_calls=self._per_session[session.id],
                max_calls_per_session=self.options.max_calls_per_session,
            )
        )

    @endpoint(
        "POST",
        "/api/webchat/calls",
        "Call the hub from the widget: a complete SDP offer in, the SDP answer out",
        tags=("webchat", "voice"),
        body=CallRequest,
        response=CallAnswer,
        status=201,
        errors=(400, 401, 413, 422, 429, 503),
    )
    async def start_call(self, request: web.Request) -> web.StreamResponse:
        req = parse(CallRequest, loads_json(await read_body(request, MAX_BODY)))
        session = await self._session(req.token)
        handler = self._handler
        if handler is None:
            raise Unavailable("calls are not being answered right now", code="calls_off")
        check_offer(req.sdp)
        if self._per_session[session.id] >= self.options.max_calls_per_session:
            raise HubError("this chat already has a call", code="call_in_progress", status=429)
        if len(self._calls) >= self.options.max_calls:
            raise HubError("all lines are busy; call again later", code="lines_busy", status=429)
        key = uuid.uuid4().hex
        info = CallInfo(
            call_id=f"webrtc:{key}",
            transport="webrtc",
            caller=session.address,
            dialled=self.options.dialled,
            sample_rate=SAMPLE_RATE,
            contact_id=session.contact_id,
            conversation_id=session.conversation_id,
            language=None if req.language is None else req.language[:2],
        )
        pc = RTCPeerConnection(RTCConfiguration(iceServers=self._ice_servers()))
        call = WebRtcCall(info, session.id, pc, self.options.no_audio_timeout_s)
        try:
            sdp = await self._answer(call, req.sdp)
        except BaseException:
            call.speaker.stop()
            await pc.close()
            raise
        self._calls[key] = call
        self._per_session[session.id] += 1
        call.begin()
        task = asyncio.create_task(self._run(key, call, handler), name=info.call_id)
        self._runs.add(task)
        task.add_done_callback(self._runs.discard)
        log.info("%s: web call from %s answered", info.call_id, info.caller)
        return json_response(CallAnswer(call_id=key, sdp=sdp), 201)

    @endpoint(
        "DELETE",
        "/api/webchat/calls/{call_id}",
        "Hang up the widget's call",
        tags=("webchat", "voice"),
        query=TokenQuery,
        errors=(401, 404, 422),
        string_params=("call_id",),
    )
    async def end_call(self, request: web.Request) -> web.StreamResponse:
        session = await self._session(read_query(request, TokenQuery).token)
        call = self._calls.get(request.match_info["call_id"])
        # Another session's call is answered exactly like a missing one.
        if call is None or call.session_id != session.id:
            raise NotFound("no such call in this chat", code="unknown_call")
        await call.end("caller", "hung up in the widget")
        return json_response({"call_id": request.match_info["call_id"], "ended": True})

    # --- calls ----------------------------------------------------------------------------

    def _ice_servers(self) -> list[RTCIceServer]:
        return [
            RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
            for s in self.options.ice_servers
        ]

    async def _answer(self, call: WebRtcCall, offer: str) -> str:
        pc = call.pc
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        # aiortc's SDP parser reports malformed input with whatever its parsing step raised;
        # all of them mean the same to the caller: the offer was unusable.
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise InvalidRequest(f"the SDP offer is not usable: {exc}", code="bad_sdp") from None
        audio = [t for t in pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise InvalidRequest("the offer has no audio (m=audio)", code="bad_sdp")
        pc.addTrack(call.speaker)  # takes the offer's audio transceiver, now sendrecv
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise InvalidRequest(f"no answer fits the offer: {exc}", code="bad_sdp") from None
        return str(pc.localDescription.sdp)

    async def _run(self, key: str, call: WebRtcCall, handler: CallHandler) -> None:
        try:
            await handler(call)
        except Exception:  # the controller promises not to raise; one call's bug ends one call
            log.exception("%s: the call handler failed", call.info.call_id)
        finally:
            await call.hang_up()
            self._calls.pop(key, None)
            self._per_session[call.session_id] -= 1
            if self._per_session[call.session_id] <= 0:
                del self._per_session[call.session_id]
            log.info("%s: web call released", call.info.call_id)
