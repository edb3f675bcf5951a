"""WebRTC calls from the web widget's "Call us" (docs/phone.md).

Signalling is plain HTTP, authenticated by the widget session token like every other
`/api/webchat/*` endpoint, and non-trickle: the browser waits for ICE gathering and posts one
complete SDP offer; the hub answers with one complete SDP answer (aiortc gathers its candidates
inside `setLocalDescription`). Media is aiortc: the caller's Opus is decoded by aiortc and
converted here to 16 kHz mono PCM; the hub's speech goes out through `Speaker`, a track that
paces 20 ms frames in real time and sends silence when there is nothing to say. Keypad presses
and the hub's hang-up travel on a data channel named "call" as small JSON messages.

The media of one call (16 kHz PCM, the outgoing track, the data channel) is in
`channels.phone.webrtc_call`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from aiohttp import web
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from pydantic import BaseModel, ConfigDict, Field, field_validator

from channels.phone.webrtc_call import SAMPLE_RATE, Speaker, WebRtcCall
from channels.webchat import session_of
from hub.calls.media import CallHandler, CallInfo
from hub.config import channel_options
from hub.errors import HubError, InvalidRequest, NotFound, Unavailable
from hub.http import Handler, endpoint, json_response, loads_json, parse, read_body, read_query
from hub.ports import ChannelContext

__all__ = ["SAMPLE_RATE", "Speaker", "WebRtcCall", "WebRtcOptions", "WebRtcTransport"]

log = logging.getLogger(__name__)

# A browser's offer with one audio line, a data channel and a few host candidates is 2-6 KB;
# four times that leaves room for many interfaces and still refuses junk before aiortc parses.
MAX_SDP_CHARS = 24 * 1024
MAX_BODY = MAX_SDP_CHARS + 1024
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
    # needs STUN, and callers behind strict firewalls need TURN (docs/phone.md).
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
        session = await session_of(self.ctx.store, read_query(request, TokenQuery).token)
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
        session = await session_of(self.ctx.store, req.token)
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
        session = await session_of(self.ctx.store, read_query(request, TokenQuery).token)
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
