"""A Twilio Media Streams caller for tests and benchmarks: does what Twilio does for one call,
over a real websocket (aiohttp client).

    async with aiohttp.ClientSession() as http:
        call = await TwilioCaller.dial(http, "http://127.0.0.1:8080", caller="+8613800138000")
        await call.send_audio(pcm_8k)               # PCM16 8 kHz, as μ-law media frames
        await call.press("1")                       # a dtmf event
        await call.until(lambda: call.marks_echoed >= 1)
        heard = call.heard_pcm()                    # what the hub played, as PCM16 8 kHz
        await call.stop()                           # the caller hangs up (`stop` event)

`dial` posts the voice webhook (signed when given the auth token), reads the TwiML's
`<Stream url>` and `<Parameter>`s and opens the stream with `connected` and `start`. `connect`
skips the webhook (hostile-client tests give their own parameters and media format).

Marks the hub sends are echoed as Twilio does, after the audio before them has "played":
`marks="instant"` at once, `"realtime"` at the pace a phone would play it (benchmarks),
`"manual"` only when the test calls `release_marks()`. A `clear` from the hub returns every
mark still pending at once, as Twilio does, and counts in `clears`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Literal

import aiohttp
import orjson

from channels.phone.twilio_wire import twilio_signature
from hub.calls.audio import pcm_to_ulaw, ulaw_to_pcm

FRAME_BYTES = 160  # 20 ms of 8 kHz μ-law
FRAME_S = 0.02
MULAW_8K = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
MarkMode = Literal["instant", "realtime", "manual"]


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return prefix + secrets.token_hex(16)


class TwilioCaller:
    """One simulated call (see the module docstring)."""

    def __init__(
        self, ws: aiohttp.ClientWebSocketResponse, stream_sid: str, call_sid: str, marks: MarkMode
    ):
        self.ws = ws
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.mark_mode = marks
        self.heard = bytearray()  # μ-law the hub sent
        self.marks_received: list[str] = []
        self.marks_echoed = 0
        self.clears = 0
        self.cleared_at: list[int] = []  # len(heard) at each clear: where later audio starts
        self.close_code: int | None = None
        self._pending: deque[tuple[str, float]] = deque()  # mark, when it has "played"
        self._playout = 0.0  # loop time the audio received so far ends playing
        self._seq = itertools.count(1)
        self._chunk = itertools.count(1)
        self._changed = asyncio.Condition()
        self._echo_wake = asyncio.Event()
        self._echoes: asyncio.Queue[str] = asyncio.Queue()
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._echoer())]
        if marks == "realtime":
            self._tasks.append(asyncio.create_task(self._echo_in_time()))

    # --- starting a call ------------------------------------------------------------------

    @classmethod
    async def dial(
        cls,
        http: aiohttp.ClientSession,
        base_url: str,
        *,
        caller: str = "+8613800138000",
        dialled: str = "+861085550100",
        auth_token: str | None = None,
        marks: MarkMode = "instant",
        extra: Mapping[str, str] | None = None,
    ) -> TwilioCaller:
        """A call the way Twilio places it: voice webhook, TwiML, stream."""
        call_sid = new_sid("CA")
        form = {
            "AccountSid": new_sid("AC"),
            "CallSid": call_sid,
            "From": caller,
            "To": dialled,
            "CallStatus": "ringing",
            "Direction": "inbound",
            **(extra or {}),
        }
        url = base_url.rstrip("/") + "/api/phone/twilio/voice"
        headers = {}
        if auth_token is not None:
            headers["X-Twilio-Signature"] = twilio_signature(auth_token, url, form.items())
        async with http.post(url, data=form, headers=headers) as resp:
            body = await resp.text()
            if resp.status != 200:
                raise AssertionError(f"voice webhook answered {resp.status}: {body}")
        stream = ET.fromstring(body).find("./Connect/Stream")
        if stream is None:
            raise AssertionError(f"the TwiML connects no stream: {body}")
        parameters = {p.get("name", ""): p.get("value", "") for p in stream.iter("Parameter")}
        return await cls.connect(
            http, stream.get("url", ""), parameters, call_sid=call_sid, marks=marks
        )

    @classmethod
    async def connect(
        cls,
        http: aiohttp.ClientSession,
        stream_url: str,
        parameters: Mapping[str, str],
        *,
        call_sid: str | None = None,
        media_format: Mapping[str, Any] = MULAW_8K,
        marks: MarkMode = "instant",
        send_start: bool = True,
    ) -> TwilioCaller:
        """Open the stream and send `connected` and (unless told not to) `start`."""
        ws = await http.ws_connect(stream_url, max_msg_size=1024 * 1024)
        call = cls(ws, new_sid("MZ"), call_sid or new_sid("CA"), marks)
        await call.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        if send_start:
            await call.send_start(parameters, media_format)
        return call

    async def send_start(
        self, parameters: Mapping[str, str], media_format: Mapping[str, Any] = MULAW_8K
    ) -> None:
        await self.send(
            {
                "event": "start",
                "sequenceNumber": str(next(self._seq)),
                "start": {
                    "accountSid": new_sid("AC"),
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": dict(parameters),
                    "mediaFormat": dict(media_format),
                },
                "streamSid": self.stream_sid,
            },
            numbered=False,
        )

    # --- what the caller does ---------------------------------------------------------------

    async def send(self, event: dict[str, Any], *, numbered: bool = True) -> None:
        """One event as a text frame (with the stream's sid and the next sequence number)."""
        body = {**event, "streamSid": self.stream_sid} if event["event"] != "connected" else event
        if numbered and event["event"] != "connected":
            body["sequenceNumber"] = str(next(self._seq))
        await self.ws.send_str(orjson.dumps(body).decode())

    async def send_raw(self, data: str | bytes) -> None:
        """Anything at all, for hostile-client tests."""
        if isinstance(data, bytes):
            await self.ws.send_bytes(data)
        else:
            await self.ws.send_str(data)

    async def send_audio(self, pcm: bytes, *, realtime: bool = False) -> None:
        """PCM16 8 kHz mono as 20 ms μ-law media frames: as fast as the socket takes them,
        or paced at real time (one frame every 20 ms, without drift)."""
        ulaw = pcm_to_ulaw(pcm)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, at in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            if realtime:
                await asyncio.sleep(max(0.0, start + index * FRAME_S - loop.time()))
            chunk = next(self._chunk)
            media = {
                "track": "inbound",
                "chunk": str(chunk),
                "timestamp": str(int(chunk * FRAME_S * 1000)),
                "payload": base64.b64encode(ulaw[at : at + FRAME_BYTES]).decode(),
            }
            await self.send({"event": "media", "media": media})

    async def press(self, digit: str) -> None:
        await self.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": digit}})

    async def stop(self) -> None:
        """The caller hangs up: a `stop` event, then the socket closes."""
        stop = {"accountSid": new_sid("AC"), "callSid": self.call_sid}
        await self.send({"event": "stop", "stop": stop})
        await self.close()

    async def close(self) -> None:
        """Drop the socket (after `stop`, or abruptly mid-call for a vanishing peer)."""
        await self.ws.close()
        await self.until(lambda: self.ws.closed)
        await self.finish()

    async def finish(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def release_marks(self) -> None:
        """`marks="manual"`: echo every mark received so far, as if its audio had played."""
        self._echo_due(float("inf"))

    # --- what the caller heard --------------------------------------------------------------

    def heard_pcm(self) -> bytes:
        return ulaw_to_pcm(bytes(self.heard))

    async def until(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        """Wait (up to `timeout` s of real time) until `predicate()` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def closed(self, timeout: float = 20) -> int | None:
        """Wait until the hub has closed the stream; its close code."""
        await self.until(lambda: self.ws.closed, timeout)
        return self.close_code

    # --- the hub's frames -------------------------------------------------------------------

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                frame = orjson.loads(msg.data)
                kind = frame.get("event")
                if kind == "media":
                    ulaw = base64.b64decode(frame["media"]["payload"])
                    self.heard += ulaw
                    self._playout = max(self._playout, loop.time()) + len(ulaw) / 8000
                elif kind == "mark":
                    name = frame["mark"]["name"]
                    self.marks_received.append(name)
                    self._pending.append((name, self._playout))
                    if self.mark_mode == "instant":
                        self._echo_due(float("inf"))
                    self._echo_wake.set()
                elif kind == "clear":
                    self.clears += 1
                    self.cleared_at.append(len(self.heard))
                    self._playout = loop.time()
                    self._echo_due(float("inf"))  # Twilio returns the pending marks
                await self._notify()
        finally:
            self.close_code = self.ws.close_code
            await self._notify()

    async def _echo_in_time(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._echo_wake.clear()
                await self._echo_wake.wait()
            await asyncio.sleep(max(0.0, self._pending[0][1] - loop.time()))
            self._echo_due(loop.time())

    def _echo_due(self, now: float) -> None:
        while self._pending and self._pending[0][1] <= now:
            self._echoes.put_nowait(self._pending.popleft()[0])

    async def _echoer(self) -> None:
        while True:
            name = await self._echoes.get()
            if not self.ws.closed:
                try:
                    await self.send({"event": "mark", "mark": {"name": name}})
                except ConnectionError:
                    pass  # the hub hung up meanwhile: the mark is moot, as on a real call
            self.marks_echoed += 1
            await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
