"""WebRTC calls (channels.phone.webrtc): a real hub with the voice channel's WebRTC transport,
called by real peers. The first tests dial from aiortc in the test (fast, every edge case);
the last ones press "Call us" in the widget in headless Chromium with a fake microphone that
speaks Korean, recognised by the real Vosk model from the audio the hub received."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiohttp.test_utils import TestClient
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from channels.phone.webrtc import SAMPLE_RATE, Speaker, WebRtcTransport
from hub.config import Settings
from hub.errors import ConfigError
from tests.phone.webrtc_support import PHONE, RecordingCalls, phone_app

TONE_HZ = 440.0


def tone(seconds: float, rate: int, hz: float = TONE_HZ) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * math.pi * hz * t) * 12000).astype("<i2").tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


@pytest.fixture
def calls() -> RecordingCalls:
    return RecordingCalls(reply=tone(0.6, SAMPLE_RATE, 660.0))


@pytest.fixture
def webrtc_options() -> dict[str, Any]:
    return {"no_audio_timeout_s": 1.5, "max_calls": 3}


@pytest.fixture
async def hub(
    aiohttp_client: Any, tmp_path: Path, calls: RecordingCalls, webrtc_options: dict[str, Any]
) -> TestClient[Any, Any]:
    settings = Settings(data_dir=tmp_path / "data", bot_enabled=False, log_level="warning")
    client: TestClient[Any, Any] = await aiohttp_client(phone_app(settings, calls, webrtc_options))
    return client


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def new_token(hub: TestClient[Any, Any]) -> str:
    resp = await hub.post("/api/webchat/sessions", json={"language": "en"})
    assert resp.status == 201
    token: str = (await resp.json())["token"]
    return token


def transport(hub: TestClient[Any, Any]) -> WebRtcTransport:
    found = hub.app[PHONE].transports[0]
    assert isinstance(found, WebRtcTransport)
    return found


class Caller:
    """A browser stand-in: an aiortc peer with the widget's data channel."""

    def __init__(self, track: MediaStreamTrack | None) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # host candidates only
        self.channel: RTCDataChannel = self.pc.createDataChannel("call")
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.channel.on("message", lambda m: self.messages.put_nowait(json.loads(m)))
        self.opened = asyncio.Event()
        self.channel.on("open", self.opened.set)
        if track is None:
            self.pc.addTransceiver("audio", direction="sendrecv")  # a sender that sends nothing
        else:
            self.pc.addTrack(track)
        self.heard: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.pc.on("track", lambda t: self.heard.done() or self.heard.set_result(t))
        self.call_id = ""

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def dial(self, hub: TestClient[Any, Any], token: str) -> None:
        resp = await hub.post("/api/webchat/calls", json={"token": token, "sdp": await self.offer()})
        body = await resp.json()
        assert resp.status == 201, body
        self.call_id = body["call_id"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))

    def press(self, digit: str) -> None:
        self.channel.send(json.dumps({"type": "dtmf", "digit": digit}))


class PcmTrack(MediaStreamTrack):
    """Sends `pcm` (48 kHz, like a browser's Opus) then silence, paced by the hub's Speaker."""

    kind = "audio"

    def __init__(self, pcm: bytes) -> None:
        super().__init__()
        self.speaker = Speaker()
        self.pcm = pcm
        self.started = False

    async def recv(self) -> av.AudioFrame:
        if not self.started:
            self.started = True
            self.speaker.enqueue(self.pcm)
        frame: av.AudioFrame = await self.speaker.recv()
        return frame


async def heard_pcm(track: MediaStreamTrack, seconds: float) -> bytes:
    """What the caller's side hears, as 16 kHz mono PCM."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    out = bytearray()
    while len(out) < seconds * SAMPLE_RATE * 2:
        frame = await track.recv()
        for f in resampler.resample(frame):  # type: ignore[arg-type]
            out += f.to_ndarray().tobytes()
    return bytes(out)


async def wait_ended(calls: RecordingCalls, index: int, timeout: float = 15) -> None:
    record = calls.calls[index]
    await asyncio.wait_for(asyncio.to_thread(record.ended.wait, timeout), timeout + 1)
    assert record.ended.is_set()


async def test_a_call_carries_audio_both_ways_and_keys(
    hub: TestClient[Any, Any], calls: RecordingCalls
) -> None:
    token = await new_token(hub)
    caller = Caller(PcmTrack(tone(3.0, SAMPLE_RATE)))
    await caller.dial(hub, token)
    await asyncio.wait_for(caller.opened.wait(), 10)
    for key in "12*9":
        caller.press(key)
    # Refused, each with a reason on the channel, never a Dtmf and never the end of the call.
    for bad in ('{"type": "dtmf", "digit": "x"}', '{"type": "dtmf", "digit": "12"}', "hi"):
        caller.channel.send(bad)
        refusal = await asyncio.wait_for(caller.messages.get(), 10)
        assert refusal["type"] == "error" and refusal["code"] == "bad_message"

    heard = await heard_pcm(await asyncio.wait_for(caller.heard, 10), 1.5)
    assert rms(heard) > 1000  # the hub's reply reached the caller
    assert abs(dominant_hz(heard, SAMPLE_RATE) - 660.0) < 15

    caller.press("#")  # the test control hangs up on "#": the widget is told on the channel
    told = await asyncio.wait_for(caller.messages.get(), 10)
    assert told == {"type": "hangup"}
    await wait_ended(calls, 0)
    record = calls.calls[0]
    assert record.digits == ["1", "2", "*", "9", "#"]
    assert record.hangup is not None and record.hangup.by == "hub"
    assert record.played is True
    info = record.info
    assert info.transport == "webrtc" and info.sample_rate == SAMPLE_RATE
    assert info.call_id == "webrtc:" + caller.call_id
    assert info.caller.startswith("visitor-") and info.conversation_id and info.contact_id
    assert info.language == "en" or info.language is None
    # The caller's tone arrived at 16 kHz, at its pitch (decoded, down-mixed and resampled).
    assert len(record.audio) > SAMPLE_RATE * 2  # > 1 s
    assert abs(dominant_hz(bytes(record.audio[: SAMPLE_RATE * 4]), SAMPLE_RATE) - TONE_HZ) < 15
    await caller.pc.close()
    assert transport(hub).live_calls == 0


async def test_a_silent_peer_ends_cleanly_while_other_calls_go_on(
    hub: TestClient[Any, Any], calls: RecordingCalls, caplog: pytest.LogCaptureFixture
) -> None:
    threads_before = own_threads()
    talker = Caller(PcmTrack(tone(30.0, SAMPLE_RATE)))
    await talker.dial(hub, await new_token(hub))
    silent = Caller(None)
    with caplog.at_level(logging.WARNING, logger="channels.phone.webrtc"):
        await silent.dial(hub, await new_token(hub))
        await wait_ended(calls, 1)
    record = calls.calls[1]
    assert record.hangup is not None and record.hangup.by == "error"
    assert record.hangup.reason == "no audio for 1.5 s"
    assert record.audio == b""
    assert any(
        "no audio from the browser for 1.5 s" in r.getMessage() and record.info.call_id in r.message
        for r in caplog.records
    )
    assert silent.pc.connectionState in ("closed", "failed", "connected", "connecting")

    # The other call is untouched: its audio keeps arriving after the silent one ended.
    talking = calls.calls[0]
    assert not talking.ended.is_set()
    before = len(talking.audio)
    await asyncio.wait_for(_grows(talking.audio, before), 10)
    resp = await hub.delete(f"/api/webchat/calls/{talker.call_id}", params={"token": "nope"})
    assert resp.status == 401
    assert not talking.ended.is_set()
    await talker.pc.close()
    await silent.pc.close()
    await wait_ended(calls, 0)
    assert talking.hangup is not None and talking.hangup.by == "caller"
    assert transport(hub).live_calls == 0
    assert own_threads() == threads_before  # the loop's executor pool aside, nothing stays


def own_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith("asyncio_"))


async def _grows(buffer: bytearray, size: int) -> None:
    while len(buffer) <= size + SAMPLE_RATE:  # half a second more
        await asyncio.sleep(0.05)


async def test_hang_up_in_the_widget_and_a_tab_that_vanishes(
    hub: TestClient[Any, Any], calls: RecordingCalls
) -> None:
    token = await new_token(hub)
    first = Caller(PcmTrack(tone(10.0, SAMPLE_RATE)))
    await first.dial(hub, token)
    other = await new_token(hub)
    # Another chat's token cannot see or end this call.
    resp = await hub.delete(f"/api/webchat/calls/{first.call_id}", params={"token": other})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "unknown_call"
    resp = await hub.delete(f"/api/webchat/calls/{first.call_id}", params={"token": token})
    assert resp.status == 200
    await wait_ended(calls, 0)
    assert calls.calls[0].hangup is not None
    assert calls.calls[0].hangup.reason == "hung up in the widget"
    await first.pc.close()

    # A tab closed mid-call: no DELETE, the browser's peer connection just goes away.
    gone = Caller(PcmTrack(tone(10.0, SAMPLE_RATE)))
    await gone.dial(hub, token)
    await asyncio.wait_for(asyncio.to_thread(calls.wait_call(1).answered.wait, 10), 11)
    await gone.pc.close()
    await wait_ended(calls, 1)
    hangup = calls.calls[1].hangup
    assert hangup is not None and hangup.by in ("caller", "error")
    assert transport(hub).live_calls == 0


async def test_refusals(hub: TestClient[Any, Any], calls: RecordingCalls) -> None:
    token = await new_token(hub)
    settings = await hub.get("/api/webchat/calls", params={"token": token})
    assert settings.status == 200
    assert await settings.json() == {
        "enabled": True,
        "ice_servers": [],
        "live_calls": 0,
        "max_calls_per_session": 1,
    }
    assert (await hub.get("/api/webchat/calls", params={"token": "x"})).status == 401

    caller = Caller(None)
    good = await caller.offer()
    no_candidates = "\r\n".join(
        line for line in good.split("\r\n") if not line.startswith("a=candidate:")
    )
    cases = {
        "hello": "v=0",
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n": "no audio",
        no_candidates: "no ICE candidates",
        good.replace("a=fingerprint:", "a=fingerprint-x:"): "fingerprint",
        good.replace("a=ice-ufrag:", "a=ice-ufrag-x:"): "not usable",
        "v=0\r\n" + "a=fingerprint:x\r\na=candidate:x\r\nm=audio 9 x y\r\n": "not usable",
    }
    for sdp, why in cases.items():
        resp = await hub.post("/api/webchat/calls", json={"token": token, "sdp": sdp})
        body = await resp.json()
        assert resp.status == 400, (sdp, body)
        assert body["error"]["code"] == "bad_sdp" and why in body["error"]["detail"], body
    huge = good + "a=x-padding:" + "p" * 30_000 + "\r\n"
    resp = await hub.post("/api/webchat/calls", json={"token": token, "sdp": huge})
    assert resp.status == 413
    resp = await hub.post("/api/webchat/calls", json={"token": "nope", "sdp": good})
    assert resp.status == 401
    resp = await hub.post("/api/webchat/calls", json={"token": token})
    assert resp.status == 422
    assert calls.calls == [] and transport(hub).live_calls == 0

    # One call per chat by default; the hub-wide limit counts every chat.
    await caller.dial(hub, token)
    again = Caller(None)
    resp = await hub.post("/api/webchat/calls", json={"token": token, "sdp": await again.offer()})
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "call_in_progress"
    await again.pc.close()
    await caller.pc.close()


def test_settings_are_checked_with_their_names() -> None:
    bad = [
        ({"ice_servers": [{"urls": ["http://stun.example"]}]}, "channels.voice.webrtc.ice_servers.0.urls"),
        ({"max_calls": 0}, "channels.voice.webrtc.max_calls"),
        ({"no_audio_timeout": 3}, "channels.voice.webrtc.no_audio_timeout"),
    ]
    for options, name in bad:
        with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
            WebRtcTransport(options, None)  # type: ignore[arg-type]


async def test_speaker_paces_and_resolves_plays() -> None:
    speaker = Speaker()
    first = speaker.enqueue(tone(0.05, SAMPLE_RATE))  # 2.5 frames
    second = speaker.enqueue(tone(0.05, SAMPLE_RATE))
    frames = [await speaker.recv() for _ in range(3)]
    assert first.done() and first.result() is True and not second.done()
    assert [f.samples for f in frames] == [320, 320, 320]
    assert [f.pts for f in frames] == [0, 320, 640]
    speaker.clear()
    assert second.result() is False
    assert rms((await speaker.recv()).to_ndarray().tobytes()) == 0  # silence when idle
    speaker.stop()
    assert (await speaker.enqueue(b"\1\0")) is False
    with pytest.raises(MediaStreamError):
        await speaker.recv()
