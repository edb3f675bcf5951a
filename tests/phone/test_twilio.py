"""The Twilio Media Streams transport end to end: the hub app with `channels.voice.twilio` on a
real TCP port, a caller speaking the documented protocol over a real websocket
(tests/phone/twilio_caller.py), Korean speech synthesised by espeak-ng and recognised by the
real Vosk model, and a recording call handler standing in for the hub's call controller.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from channels.phone import PhoneChannel
from channels.phone.twilio import TwilioTransport
from channels.phone.twilio_session import AHEAD_MARKS, CHUNK_FRAMES, FRAME_BYTES
from channels.phone.twilio_wire import StreamTokens, twilio_signature
from channels.speech import VoskSpeechToText
from hub.api import create_app
from hub.api.keys import OUTBOX
from hub.calls.audio import pcm_to_ulaw, ulaw_to_pcm
from hub.calls.media import AudioIn, CallInfo, Dtmf, HangUp, MediaSession
from hub.config import Settings
from hub.errors import ConfigError
from hub.model import Conversation, Message
from hub.ports import ChannelSendError, SendResult
from tests.phone.audio import korean_speech, wav_bytes
from tests.phone.twilio_caller import MULAW_8K, TwilioCaller
from tests.support import free_port

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
KOREAN_PHRASE = "어서 오세요. 얼마예요?"
IDLE_S = 30.0


# --- test parts ---------------------------------------------------------------------------------


def tone(seconds: float, hz: float = 440, rate: int = 8000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


class ManualClock:
    """The transport's clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0
        self._moved = asyncio.Condition()

    def now(self) -> float:
        return self.t

    async def sleep_until(self, deadline: float) -> None:
        async with self._moved:
            await self._moved.wait_for(lambda: self.t >= deadline)

    async def advance(self, seconds: float) -> None:
        async with self._moved:
            self.t += seconds
            self._moved.notify_all()


@dataclass
class CallRecord:
    session: MediaSession
    audio: bytearray = field(default_factory=bytearray)
    digits: list[str] = field(default_factory=list)
    hangup: HangUp | None = None

    @property
    def info(self) -> CallInfo:
        return self.session.info


class RecordingControl:
    """The call controller's place in these tests: records each call's audio, keypad presses
    and hang-up; the test speaks into the call through `session.play`."""

    def __init__(self) -> None:
        self.calls: dict[str, CallRecord] = {}
        self._changed = asyncio.Condition()

    async def handle(self, session: MediaSession) -> None:
        record = self.calls[session.info.call_id] = CallRecord(session)
        await self._notify()
        async for event in session.events():
            if isinstance(event, AudioIn):
                record.audio += event.pcm
            elif isinstance(event, Dtmf):
                record.digits.append(event.digit)
            else:
                record.hangup = event
            await self._notify()

    async def deliver(self, conversation: Conversation, message: Message) -> SendResult:
        raise ChannelSendError("no live call in this test", retryable=False)

    async def until(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def heard(self, record: CallRecord, size: int) -> None:
        """Wait until `size` bytes of the caller's PCM have reached the handler."""
        await self.until(lambda: len(record.audio) == size)

    async def call(self, caller: TwilioCaller) -> CallRecord:
        call_id = f"twilio:{caller.stream_sid}"
        await self.until(lambda: call_id in self.calls)
        return self.calls[call_id]

    async def ended(self, caller: TwilioCaller) -> HangUp:
        record = await self.call(caller)
        await self.until(lambda: record.hangup is not None)
        assert record.hangup is not None
        return record.hangup

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


@dataclass
class PhoneHub:
    client: TestClient[Any, Any]
    url: str
    control: RecordingControl
    transport: TwilioTransport
    clock: ManualClock
    http: aiohttp.ClientSession

    async def dial(self, **kw: Any) -> TwilioCaller:
        return await TwilioCaller.dial(self.http, self.url, auth_token=AUTH_TOKEN, **kw)

    @property
    def stream_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/phone/twilio/stream"

    async def good_parameters(self, call_sid: str) -> dict[str, str]:
        token = self.transport.tokens.mint(call_sid, time.time())
        return {"From": "+8613800138001", "To": "+861085550100", "token": token}


@pytest.fixture
async def phone(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[PhoneHub]:
    port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        demo=False,
        bot_enabled=False,
        log_level="warning",
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        channels={
            "voice": {
                "twilio": {"auth_token": AUTH_TOKEN, "idle_timeout_s": IDLE_S, "max_calls": 4}
            }
        },
    )
    app = create_app(settings)
    phone_channel = app[OUTBOX].channels["voice"]
    assert isinstance(phone_channel, PhoneChannel)
    control = RecordingControl()
    # The composition root gets the call controller from the flows part; until then the
    # test hands the channel its own.
    phone_channel.ctx = dataclasses.replace(phone_channel.ctx, calls=control)
    transport = phone_channel.transports[0]
    assert isinstance(transport, TwilioTransport)
    clock = ManualClock()
    transport.clock = clock
    client = await aiohttp_client(TestServer(app, port=port))
    async with aiohttp.ClientSession() as http:
        yield PhoneHub(client, f"http://127.0.0.1:{port}", control, transport, clock, http)


def twilio_tasks() -> list[asyncio.Task[Any]]:
    return [
        t for t in asyncio.all_tasks() if t.get_name().startswith("omnihub-twilio") and not t.done()
    ]


async def assert_call_goes_on(phone: PhoneHub, good: TwilioCaller) -> None:
    """The concurrent good call still carries audio both ways and keypad presses."""
    record = await phone.control.call(good)
    assert record.hangup is None
    before = len(record.audio)
    await good.send_audio(tone(0.1))
    await good.press("5")
    await phone.control.until(lambda: len(record.audio) == before + 1600 and "5" in record.digits)
    assert await record.session.play(tone(0.04))


# --- a call end to end ----------------------------------------------------------------------------


async def test_a_korean_call_end_to_end(phone: PhoneHub) -> None:
    speech = korean_speech(KOREAN_PHRASE)
    call = await phone.dial(caller="+86 138 0013 8000", dialled="+861085550100")
    record = await phone.control.call(call)
    info = record.info
    assert (info.transport, info.caller, info.dialled, info.sample_rate) == (
        "twilio",
        "+8613800138000",
        "+861085550100",
        8000,
    )
    assert info.call_id == f"twilio:{call.stream_sid}"
    assert "token" not in info.params and info.params["From"] == "+86 138 0013 8000"

    await call.send_audio(speech)
    whole = len(pcm_to_ulaw(speech)) * 2
    await phone.control.until(lambda: len(record.audio) == whole)
    sent = np.frombuffer(speech, "<i2").astype(np.int32)
    got = np.frombuffer(bytes(record.audio), "<i2").astype(np.int32)
    # μ-law keeps about 1/32 of a sample's magnitude (plus a small step near zero), and the
    # hub decodes exactly what G.711 gives back.
    assert np.all(np.abs(got - sent) <= np.abs(sent) // 16 + 16)
    assert bytes(record.audio) == ulaw_to_pcm(pcm_to_ulaw(speech))
    engine = VoskSpeechToText()
    try:
        # The 16 kHz Korean model hears espeak's narrowband voice roughly; the question
        # "얼마예요?" comes through reliably.
        assert "얼마" in await engine.transcribe(wav_bytes(bytes(record.audio)))
    finally:
        engine.close()

    for digit in "1#":
        await call.press(digit)
    await phone.control.until(lambda: record.digits == ["1", "#"])

    reply = korean_speech("네")
    assert await record.session.play(reply)
    assert bytes(call.heard) == pcm_to_ulaw(reply)
    frames = -(-len(call.heard) // (FRAME_BYTES * CHUNK_FRAMES))
    assert len(call.marks_received) == frames and call.marks_echoed == frames

    await call.stop()
    assert await phone.control.ended(call) == HangUp("caller", "stop")
    await phone.control.until(lambda: phone.transport.live_calls == 0)
    assert twilio_tasks() == []


async def test_clear_cuts_playback_and_the_hub_stays_a_second_ahead(phone: PhoneHub) -> None:
    call = await phone.dial(marks="manual")
    record = await phone.control.call(call)
    playing = asyncio.create_task(record.session.play(tone(5)))
    ahead = AHEAD_MARKS * CHUNK_FRAMES * FRAME_BYTES  # 1 s of μ-law
    await call.until(lambda: len(call.marks_received) == AHEAD_MARKS)
    assert len(call.heard) == ahead  # nothing more until Twilio says it has played some
    call.release_marks()
    await call.until(lambda: len(call.marks_received) == 2 * AHEAD_MARKS)
    assert not playing.done()

    record.session.stop_playback()
    assert await playing is False
    await call.until(lambda: call.clears == 1)
    assert len(call.heard) < len(pcm_to_ulaw(tone(5)))
    record.session.stop_playback()  # idempotent: nothing is playing, no second clear
    # a play after the clear goes out whole and resolves once its marks are echoed
    again = asyncio.create_task(record.session.play(tone(0.3)))
    await call.until(lambda: len(call.marks_received) >= 2 * AHEAD_MARKS + 2)
    call.release_marks()
    assert await again is True
    assert call.clears == 1
    await call.stop()
    await phone.control.ended(call)


async def test_a_pending_play_resolves_false_when_the_call_ends(phone: PhoneHub) -> None:
    call = await phone.dial(marks="manual")
    record = await phone.control.call(call)
    playing = asyncio.create_task(record.session.play(tone(2)))
    await call.until(lambda: len(call.marks_received) == AHEAD_MARKS)
    await call.stop()
    assert await playing is False
    assert await record.session.play(tone(0.1)) is False
    assert await phone.control.ended(call) == HangUp("caller", "stop")


async def test_the_hub_hangs_up(phone: PhoneHub) -> None:
    call = await phone.dial()
    record = await phone.control.call(call)
    await record.session.hang_up()
    await record.session.hang_up()  # idempotent
    assert await phone.control.ended(call) == HangUp("hub", "hung up by the hub")
    assert await call.closed() == 1000
    await phone.control.until(lambda: phone.transport.live_calls == 0)


async def test_the_caller_paces_audio_and_marks_in_real_time(phone: PhoneHub) -> None:
    """What the phone benchmark relies on: `realtime` sends 20 ms a frame and echoes a mark
    only once the audio before it would have played."""
    call = await phone.dial(marks="realtime")
    record = await phone.control.call(call)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await call.send_audio(tone(0.3), realtime=True)
    assert loop.time() - began >= 0.27  # 15 frames, the first at once
    began = loop.time()
    assert await record.session.play(tone(0.6))
    assert loop.time() - began >= 0.55
    await phone.control.heard(record, 4800)
    await call.stop()


# --- bad input ------------------------------------------------------------------------------------


OVERSIZED = orjson.dumps(
    {"event": "media", "media": {"payload": base64.b64encode(b"\xff" * 20_000).decode()}}
).decode()
MID_CALL_GARBAGE: list[tuple[str, str | bytes, str]] = [
    ("not json", "{{{ not json", "garbled frame"),
    ("a binary frame", b"\x00\x01\x02", "binary frame"),
    ("an unknown event", '{"event": "bogus"}', "garbled frame"),
    ("a JSON array", "[1, 2, 3]", "garbled frame"),
    ("bad base64", '{"event": "media", "media": {"payload": "!!!"}}', "not base64"),
    ("a bad digit", '{"event": "dtmf", "dtmf": {"digit": "X"}}', "garbled frame"),
    ("a second start", "SECOND_START", "a second start"),
    ("an oversized frame", OVERSIZED, "oversized frame"),
]


async def test_garbage_mid_call_ends_that_call_only(phone: PhoneHub) -> None:
    good = await phone.dial()
    for what, frame, reason in MID_CALL_GARBAGE:
        bad = await phone.dial()
        record = await phone.control.call(bad)
        await bad.send_audio(tone(0.04))
        await phone.control.heard(record, 640)
        if frame == "SECOND_START":
            params = await phone.good_parameters(bad.call_sid)
            await bad.send_start(params)
        else:
            await bad.send_raw(frame)
        hangup = await phone.control.ended(bad)
        assert hangup.by == "error" and reason in hangup.reason, what
        assert await bad.closed() == 1008, what
        await assert_call_goes_on(phone, good)
    await phone.control.until(lambda: phone.transport.live_calls == 1)
    await good.stop()
    assert await phone.control.ended(good) == HangUp("caller", "stop")


async def test_a_socket_dropped_mid_call_ends_that_call(phone: PhoneHub) -> None:
    good = await phone.dial()
    bad = await phone.dial(marks="manual")
    record = await phone.control.call(bad)
    playing = asyncio.create_task(record.session.play(tone(3)))
    await bad.until(lambda: len(bad.marks_received) == AHEAD_MARKS)
    await bad.close()  # no stop: the peer vanished
    hangup = await phone.control.ended(bad)
    assert hangup == HangUp("error", "the websocket closed")
    assert await playing is False
    await assert_call_goes_on(phone, good)
    await phone.control.until(lambda: phone.transport.live_calls == 1)
    await good.stop()


async def test_streams_refused_before_a_call(phone: PhoneHub) -> None:
    good = await phone.dial()
    valid = await phone.good_parameters("CA" + "0" * 32)
    other = await phone.good_parameters("CA" + "1" * 32)
    cases: list[tuple[str, dict[str, str], dict[str, Any] | None, str | None]] = [
        ("no token", {k: v for k, v in valid.items() if k != "token"}, None, None),
        ("a wrong token", {**valid, "token": "1.abc"}, None, None),
        ("another call's token", other, None, None),
        ("a-law", valid, {"encoding": "audio/x-alaw", "sampleRate": 8000, "channels": 1}, None),
        ("16 kHz", valid, {"encoding": "audio/x-mulaw", "sampleRate": 16000, "channels": 1}, None),
        ("media before start", valid, None, '{"event": "media", "media": {"payload": ""}}'),
        ("garbage first", valid, None, "hello"),
    ]
    for what, params, media_format, first in cases:
        bad = await TwilioCaller.connect(
            phone.http, phone.stream_url, params, call_sid="CA" + "0" * 32, send_start=False
        )
        if first is not None:
            await bad.send_raw(first)
        else:
            await bad.send_start(params, media_format or MULAW_8K)
        assert await bad.closed() == 1008, what
        assert f"twilio:{bad.stream_sid}" not in phone.control.calls, what
        await assert_call_goes_on(phone, good)
    assert phone.transport.live_calls == 1
    await good.stop()


async def test_a_stream_without_start_or_audio_times_out(phone: PhoneHub) -> None:
    silent = await phone.dial()
    record = await phone.control.call(silent)
    talker = await phone.dial()
    mute = await TwilioCaller.connect(phone.http, phone.stream_url, {}, send_start=False)
    await phone.clock.advance(IDLE_S - 10)
    await talker.send_audio(tone(0.04))
    talking = await phone.control.call(talker)
    await phone.control.heard(talking, 640)
    await phone.clock.advance(15)  # silent: 35 s without audio; talker: 15 s
    assert await phone.control.ended(silent) == HangUp("error", f"no audio for {IDLE_S:g} s")
    assert record.hangup is not None
    assert await mute.closed() == 1008
    await assert_call_goes_on(phone, talker)
    await talker.stop()


async def test_busy_when_every_line_is_taken(phone: PhoneHub) -> None:
    calls = [await phone.dial() for _ in range(4)]
    for call in calls:
        await phone.control.call(call)
    url = phone.url + "/api/phone/twilio/voice"
    form = {"CallSid": "CA" + "9" * 32, "From": "+8613800138009", "To": "+861085550100"}
    signature = twilio_signature(AUTH_TOKEN, url, form.items())
    async with phone.http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as resp:
        assert resp.status == 200
        assert '<Reject reason="busy" />' in await resp.text()
    for call in calls:
        await call.stop()


async def test_stopping_the_hub_ends_live_calls(phone: PhoneHub) -> None:
    call = await phone.dial()
    record = await phone.control.call(call)
    await phone.client.close()
    assert record.hangup == HangUp("hub", "the hub is shutting down")
    assert await call.closed() == 1001
    assert phone.transport.live_calls == 0
    assert twilio_tasks() == []


# --- the voice webhook -------------------------------------------------------------------------


async def test_the_voice_webhook_checks_the_twilio_signature(phone: PhoneHub) -> None:
    url = phone.url + "/api/phone/twilio/voice"
    form = {"CallSid": "CA" + "2" * 32, "From": "+8613800138000", "To": "+861085550100"}
    right = twilio_signature(AUTH_TOKEN, url, form.items())
    wrong = twilio_signature("another-auth-token-0000", url, form.items())
    for signature, status in ((right, 200), (wrong, 403), (None, 403)):
        headers = {"X-Twilio-Signature": signature} if signature else {}
        async with phone.http.post(url, data=form, headers=headers) as resp:
            assert resp.status == status, signature
            body = await resp.text()
        if status == 200:
            assert resp.content_type == "text/xml"
            assert f'<Stream url="{phone.stream_url}">' in body
            assert '<Parameter name="From" value="+8613800138000" />' in body
        else:
            assert orjson.loads(body)["error"]["code"] == "bad_signature"
    # a tampered field breaks the signature
    async with phone.http.post(
        url, data={**form, "From": "+10000000000"}, headers={"X-Twilio-Signature": right}
    ) as resp:
        assert resp.status == 403
    async with phone.http.post(
        url, data=b"\xff\xfe=\x00", headers={"Content-Type": "application/x-www-form-urlencoded"}
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "invalid_request"
    async with phone.http.get(phone.url + "/api/openapi.json") as resp:
        paths = (await resp.json())["paths"]
    assert "post" in paths["/api/phone/twilio/voice"]
    assert "get" in paths["/api/phone/twilio/stream"]


def test_the_signature_is_twilios_documented_one() -> None:
    """The worked example of Twilio's webhook security documentation (and twilio-node's
    test suite): an independent check of the algorithm, not our own output fed back."""
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    for number, expected in (
        ("+14158675309", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("+14158675310", "GvWf1cFY/Q7PnoempGyD5oXAezc="),
    ):
        form = {
            "CallSid": "CA1234567890ABCDE",
            "Caller": number,
            "Digits": "1234",
            "From": number,
            "To": "+18005551212",
        }
        assert twilio_signature("12345", url, form.items()) == expected


def test_stream_tokens_are_per_call_and_short_lived() -> None:
    tokens = StreamTokens(b"k" * 32, ttl=60)
    token = tokens.mint("CA1", now=1_000_000)
    assert tokens.valid(token, "CA1", now=1_000_059)
    assert not tokens.valid(token, "CA1", now=1_000_061)
    assert not tokens.valid(token, "CA2", now=1_000_000)
    assert not StreamTokens(b"x" * 32, ttl=60).valid(token, "CA1", now=1_000_000)
    assert not tokens.valid(token + "x", "CA1", now=1_000_000)


def test_bad_settings_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"channels\.voice\.twilio\.max_calls"):
        TwilioTransport({"max_calls": 0}, None)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"channels\.voice\.twilio\.colour"):
        TwilioTransport({"colour": "red"}, None)  # type: ignore[arg-type]
