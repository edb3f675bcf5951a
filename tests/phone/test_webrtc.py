"""WebRTC calls (channels.phone.webrtc): a real hub with the voice channel's WebRTC transport,
called by real peers. The first tests dial from aiortc in the test (fast, every edge case);
the last ones press "Call us" in the widget in headless Chromium with a fake microphone that
speaks Korean, recognised by the real Vosk model from the audio the hub received."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import shutil
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import playwright.sync_api as playwright_sync
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
from channels.speech import VoskSpeechToText
from hub.api import create_app
from hub.config import Settings
from hub.errors import ConfigError
from tests.phone.audio import korean_speech, wav_bytes
from tests.phone.webrtc_support import (
    PHONE,
    HubThread,
    RecordingCalls,
    phone_app,
)
from tests.web.accessibility import assert_accessible
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS

Browser = playwright_sync.Browser
expect = playwright_sync.expect

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
        self.pc.on("track", self._on_track)
        self.call_id = ""

    def _on_track(self, track: MediaStreamTrack) -> None:
        if not self.heard.done():
            self.heard.set_result(track)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return str(self.pc.localDescription.sdp)

    async def dial(self, hub: TestClient[Any, Any], token: str) -> None:
        resp = await hub.post(
            "/api/webchat/calls", json={"token": token, "sdp": await self.offer()}
        )
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
    more = before + SAMPLE_RATE  # half a second more
    await asyncio.to_thread(wait_until, lambda: len(talking.audio) > more, "more audio", 10)
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
    spec = await (await hub.get("/api/openapi.json")).json()
    assert {"get", "post"} <= set(spec["paths"]["/api/webchat/calls"])
    assert "delete" in spec["paths"]["/api/webchat/calls/{call_id}"]

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


@pytest.mark.parametrize(
    "webrtc_options",
    [{"max_calls": 1, "ice_servers": [{"urls": ["turn:turn.example.org:3478"], "username": "u"}]}],
)
async def test_the_hub_wide_limit_ice_servers_and_stop(
    hub: TestClient[Any, Any], calls: RecordingCalls
) -> None:
    first, second = await new_token(hub), await new_token(hub)
    settings = await (await hub.get("/api/webchat/calls", params={"token": first})).json()
    assert settings["ice_servers"] == [
        {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": None}
    ]
    # The calls below go without it: example.org runs no TURN server, and gathering would
    # wait for its answer.
    transport(hub).options.ice_servers = []
    caller = Caller(PcmTrack(tone(10.0, SAMPLE_RATE)))
    await caller.dial(hub, first)
    busy = Caller(None)
    offer = await busy.offer()
    resp = await hub.post("/api/webchat/calls", json={"token": second, "sdp": offer})
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "lines_busy"
    await busy.pc.close()

    # The hub shutting down hangs up the live call and tells the widget.
    await asyncio.wait_for(caller.opened.wait(), 10)
    await hub.app[PHONE].stop()
    assert await asyncio.wait_for(caller.messages.get(), 10) == {"type": "hangup"}
    await wait_ended(calls, 0)
    hangup = calls.calls[0].hangup
    assert hangup is not None and hangup.by == "hub"
    assert transport(hub).live_calls == 0
    resp = await hub.post("/api/webchat/calls", json={"token": second, "sdp": offer})
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "calls_off"
    await caller.pc.close()


def test_settings_are_checked_with_their_names() -> None:
    bad = [
        (
            {"ice_servers": [{"urls": ["http://stun.example"]}]},
            "channels.voice.webrtc.ice_servers.0.urls",
        ),
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


# --- the widget in headless Chromium ----------------------------------------------------------

# espeak-ng's Korean is robotic; the Korean Vosk model reliably recognises this phrase from it
# (tests/channels/telegram/test_media.py chose it). "Welcome. How much is it?"
CALLER_PHRASE = "어서 오세요. 얼마예요?"
HUB_PHRASE = "감사합니다. 잠시만 기다려 주세요."  # "Thank you. Please wait a moment."
FAKE_MIC_RATE = 48000


@pytest.fixture(scope="module")
def fake_mic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The WAV Chromium plays as its microphone (looped): the phrase with a pause each side."""
    pause = bytes(int(0.6 * FAKE_MIC_RATE) * 2)
    path = tmp_path_factory.mktemp("mic") / "caller.wav"
    path.write_bytes(
        wav_bytes(pause + korean_speech(CALLER_PHRASE, FAKE_MIC_RATE) + pause, FAKE_MIC_RATE)
    )
    return path


def launch(pw: playwright_sync.Playwright, fake_mic: Path, *, grant: bool) -> Browser:
    """Chromium with a fake microphone playing `fake_mic`; `grant`: the visitor allows it
    (without, headless Chromium answers the permission prompt with a refusal)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `make system-deps` (make test does)")
    args = [
        *CHROMIUM_ARGS,
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={fake_mic}",
        "--autoplay-policy=no-user-gesture-required",  # the page's analyser reads the call
    ]
    if grant:
        args.append("--use-fake-ui-for-media-stream")  # grants the microphone, no prompt
    return pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)


@pytest.fixture(scope="module")
def playwright(fake_mic: Path) -> Iterator[playwright_sync.Playwright]:
    with playwright_sync.sync_playwright() as pw:
        yield pw


@pytest.fixture
def browser_hub(tmp_path: Path) -> Iterator[tuple[HubThread, RecordingCalls]]:
    reply = korean_speech(HUB_PHRASE, SAMPLE_RATE)
    calls = RecordingCalls(reply=reply + bytes(SAMPLE_RATE) + reply)
    settings = Settings(data_dir=tmp_path / "data", bot_enabled=False, log_level="warning")
    with HubThread(phone_app(settings, calls, {"no_audio_timeout_s": 10})) as hub:
        yield hub, calls


def wait_until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# Peak RMS of the call's incoming audio, measured by a WebAudio analyser on the widget's
# <audio> element's stream, until it passes `floor` or `ms` pass.
REMOTE_LEVEL_JS = """
async ([floor, ms]) => {
  const audio = document.querySelector('[data-testid="omnihub-call-audio"]');
  const started = Date.now();
  while (!audio.srcObject && Date.now() - started < ms) await new Promise(r => setTimeout(r, 50));
  if (!audio.srcObject) return -1;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(audio.srcObject).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  let peak = 0;
  while (peak < floor && Date.now() - started < ms) {
    await new Promise(r => setTimeout(r, 50));
    analyser.getFloatTimeDomainData(data);
    peak = Math.max(peak, Math.sqrt(data.reduce((s, v) => s + v * v, 0) / data.length));
  }
  await ctx.close();
  return peak;
}
"""


def press_call_us(page: playwright_sync.Page, hub: HubThread, label: str) -> Any:
    """Opens the demo page's widget and presses its call button (named `label`)."""
    page.goto(hub.url + "/demo")
    page.get_by_test_id("omnihub-launcher").click()
    start = page.get_by_test_id("omnihub-call")
    expect(start).to_have_text(label)
    start.click()
    return start


def test_call_us_in_the_widget(
    playwright: playwright_sync.Playwright,
    fake_mic: Path,
    browser_hub: tuple[HubThread, RecordingCalls],
) -> None:
    hub, calls = browser_hub
    browser = launch(playwright, fake_mic, grant=True)
    context = browser.new_context(locale="en-US")
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        start = press_call_us(page, hub, "Call us")
        state = page.get_by_test_id("omnihub-call-state")
        expect(state).to_have_text("In call")
        expect(page.get_by_test_id("omnihub-call-timer")).to_have_text(re.compile(r"^00:0\d$"))
        expect(page.get_by_test_id("omnihub-call-hangup")).to_be_focused()
        assert_accessible(page)  # the call bar open: keypad, mute, hang-up, timer

        # The hub's words reach the page's speaker.
        level = page.evaluate(REMOTE_LEVEL_JS, [0.02, 15_000])
        assert level >= 0.02, f"the hub's audio did not reach the page (peak RMS {level})"

        record = calls.wait_call(0)
        assert record.info.transport == "webrtc" and record.info.language == "en"
        conversation = page.get_by_test_id("omnihub-panel").get_attribute("data-conversation-id")
        assert record.info.conversation_id == int(conversation or 0)
        # Two loops of the fake microphone's file (phrase and pauses) reach the hub.
        loop_bytes = (fake_mic_seconds(CALLER_PHRASE) + 1.2) * SAMPLE_RATE * 2
        wait_until(lambda: len(record.audio) > 2 * loop_bytes, "the caller's audio", 30)

        keypad = page.get_by_test_id("omnihub-keypad")
        keypad.locator('[data-key="1"]').click()
        keypad.locator('[data-key="2"]').click()
        keypad.locator('[data-key="*"]').focus()
        page.keyboard.press("7")  # typed digits press the keypad too
        wait_until(lambda: record.digits == ["1", "2", "7"], "the keys as Dtmf")
        mute = page.get_by_test_id("omnihub-call-mute")
        mute.click()
        expect(mute).to_have_attribute("aria-pressed", "true")

        heard = transcribe(hub, bytes(record.audio))
        assert "어서 오세요" in heard, heard

        # The hub hangs up (the test control does on "#"): the widget says so.
        keypad.locator('[data-key="#"]').click()
        expect(state).to_have_text("Call ended")
        expect(start).to_be_visible()
        wait_until(record.ended.is_set, "the call's end")
        assert record.hangup is not None and record.hangup.by == "hub"

        # Hang-up from the widget.
        start.click()
        expect(state).to_have_text("In call")
        second = calls.wait_call(1)
        page.get_by_test_id("omnihub-call-hangup").click()
        expect(state).to_have_text("Call ended")
        expect(start).to_be_focused()
        wait_until(second.ended.is_set, "the second call's end")
        # The DELETE or the browser's closing peer connection (RTCP BYE), whichever is first.
        assert second.hangup is not None and second.hangup.by == "caller"
        wait_until(lambda: hub.app[PHONE].transports[0].live_calls == 0, "calls released")  # type: ignore[attr-defined]
    finally:
        browser.close()
    assert errors == []


def transcribe(hub: HubThread, pcm: bytes) -> str:
    """The real Vosk model's words for `pcm` (run on the hub's loop: Playwright owns ours)."""
    stt = VoskSpeechToText()
    try:
        heard: str = hub.call(stt.transcribe(wav_bytes(pcm, SAMPLE_RATE)), timeout=120)
        return heard
    finally:
        stt.close()


def fake_mic_seconds(text: str) -> float:
    return len(korean_speech(text, SAMPLE_RATE)) / 2 / SAMPLE_RATE


def test_refused_microphone_and_chinese_strings(
    playwright: playwright_sync.Playwright,
    fake_mic: Path,
    browser_hub: tuple[HubThread, RecordingCalls],
) -> None:
    hub, calls = browser_hub
    browser = launch(playwright, fake_mic, grant=False)  # the visitor says no
    try:
        page = browser.new_page(locale="zh-CN")
        start = press_call_us(page, hub, "给我们打电话")
        notice = page.get_by_test_id("omnihub-error")
        expect(notice).to_contain_text("麦克风权限被拒绝")
        expect(start).to_be_visible()
        assert_accessible(page)
        assert calls.calls == []
    finally:
        browser.close()


def test_no_call_button_without_webrtc(
    playwright: playwright_sync.Playwright, fake_mic: Path, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", bot_enabled=False, log_level="warning")
    with HubThread(create_app(settings)) as hub:  # no channels.voice.webrtc
        browser = launch(playwright, fake_mic, grant=True)
        try:
            page = browser.new_page()
            page.goto(hub.url + "/demo")
            with page.expect_response(lambda r: "/api/webchat/calls" in r.url) as asked:
                page.get_by_test_id("omnihub-launcher").click()
            assert asked.value.status == 404
            expect(page.get_by_test_id("omnihub-input")).to_be_focused()
            expect(page.get_by_test_id("omnihub-call-bar")).to_be_hidden()
        finally:
            browser.close()
