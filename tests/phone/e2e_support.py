"""A phone hub for the end-to-end call tests: the whole hub app started from settings
(`channels.voice.twilio`, `phone_flows` = tests/phone/ko_flows.yaml) on a real TCP port, with
the real speech engines (VoskLiveSpeech, Pyttsx3Speech) the composition root builds, and what
the tests read back: the event log, messages, live captions, and the caller's side of the
audio recognised by the real Korean Vosk model.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from channels.speech import VoskLiveSpeech
from hub.api import create_app
from hub.api.app import CALL_CONTROL
from hub.api.keys import AGENTS, BUS, STORE
from hub.calls.audio import pcm_to_ulaw, ulaw_to_pcm
from hub.calls.controller import CallController
from hub.config import Settings
from hub.model import Conversation, Event, EventKind, Message, Role
from hub.ports import BusEnvelope
from tests.phone.audio import frames, korean_speech, silence
from tests.phone.twilio_caller import TwilioCaller
from tests.support import free_port

FLOWS = Path(__file__).with_name("ko_flows.yaml")
OPEN_LINE = "+82215550100"  # rule open-line: always open, flow main
CLOSED_LINE = "+82215550199"  # rule closed-line: no hours, every call out of hours
CALLER = "+821012345678"
AGENT_EMAIL, AGENT_PASSWORD = "ann@example.com", "password-123"
# What survives espeak-ng Korean at 8 kHz through the free (grammar-less) Korean model:
# "얼마" of this sentence comes through reliably, whoever speaks it (the caller's espeak-ng,
# or the hub's pyttsx3 over espeak-ng); most other free Korean does not (docs/phone-speech.md).
SENTENCE = "어서 오세요. 얼마예요?"
MENU_WORDS = ["예", "아니요", "상담원", "환불"]  # recognised reliably under a grammar
# An agent's reply the caller's side checks under MENU_WORDS: each render of uncached speech
# differs a little (espeak-ng's last chunk), and free recognition of a whole sentence then
# came and went ("얼마 예요" / "었으나 예요"); a word under a grammar is heard every time.
AGENT_REPLY = "아니요."
AUTH_TOKEN = "0123456789abcdef0123456789abcdef"
# Prompts of tests/phone/ko_flows.yaml the tests wait for
MENU = ["어서 오세요.", "환불", "일번", "상담원", "이번"]  # said part by part
REFUND = "환불은 삼일 걸립니다."
VOICEMAIL = "메시지를 남겨 주세요."
SYNTH_SLACK_BYTES = 400
BEEP_BYTES = 2400  # the 0.3 s tone before a voicemail, as 8 kHz μ-law
T = TypeVar("T")


def phone_settings(tmp_path: Path, port: int, flows: Path = FLOWS, **extra: Any) -> Settings:
    """Plain settings, as an operator writes them."""
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "demo": False,
        "bot_enabled": False,
        "log_level": "warning",
        "port": port,
        "public_url": f"http://127.0.0.1:{port}",
        "channels": {"voice": {"twilio": {"auth_token": AUTH_TOKEN}}},
        "phone_flows": flows,
    }
    return Settings(**(base | extra))


def telephone(pcm: bytes) -> bytes:
    """`pcm` as it reaches the other end of a G.711 μ-law line."""
    return ulaw_to_pcm(pcm_to_ulaw(pcm))


def spoken(text: str) -> bytes:
    """The caller saying `text` (espeak-ng Korean), then a pause that ends the utterance.

    Half a second before it: free recognition of espeak-ng at 8 kHz depends on how the
    voice-activity frames fall on the speech; 0, 0.5 and 1 s of lead give "... 얼마 예요" for
    SENTENCE, 0.2 s gave "A 백여 었으나 예요" (measured)."""
    return silence(0.5) + korean_speech(text) + silence(1.0)


async def recognise(ears: VoskLiveSpeech, pcm: bytes, grammar: list[str] | None = None) -> str:
    """What the real Korean model hears in `pcm` (8 kHz), finals joined by spaces; led by
    half a second of silence, as `spoken` is (the hub's audio starts with the speech)."""
    stream = ears.stream(sample_rate=8000, language="ko", grammar=grammar or ())
    try:
        finals = []
        for frame in frames(silence(0.5) + pcm + silence(1.0)):
            finals += [h.text for h in await stream.feed(frame) if h.kind == "final"]
        last = await stream.finish()
        if last is not None and last.kind == "final":
            finals.append(last.text)
        return " ".join(t for t in finals if t)
    finally:
        stream.close()


def wav_pcm(data: bytes) -> bytes:
    """The samples of a 16-bit mono 8 kHz WAV (anything else fails the test)."""
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return w.readframes(w.getnframes())


async def eventually(fn: Callable[[], Awaitable[T | None]], timeout: float = 20.0) -> T:
    """The first non-empty result of `fn`, waiting (bounded) for the hub's async work."""
    async with asyncio.timeout(timeout):
        while True:
            found = await fn()
            if found:
                return found
            await asyncio.sleep(0.05)


@dataclass
class PhoneHub:
    """The running hub, an HTTP client, and what the bus carried."""

    app: web.Application
    url: str
    http: aiohttp.ClientSession
    flows: Path  # the hub's flows file (a copy the test may edit)
    captions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def calls(self) -> CallController:
        return self.app[CALL_CONTROL]

    def on_bus(self, envelope: BusEnvelope) -> None:
        if envelope["kind"] == "caption":
            self.captions.append(
                {"conversation_id": envelope["conversation_id"], **envelope["data"]}
            )

    async def dial(self, dialled: str = OPEN_LINE, **kw: Any) -> TwilioCaller:
        return await TwilioCaller.dial(
            self.http, self.url, caller=CALLER, dialled=dialled, auth_token=AUTH_TOKEN, **kw
        )

    async def spoken_bytes(self, text: str) -> int:
        """How many bytes of 8 kHz μ-law the hub's own synthesiser makes of `text` (what a
        caller receives for it)."""
        pcm = await self.calls.tts.synthesize(text, sample_rate=8000, language="ko", cache=True)
        return len(pcm) // 2

    async def heard_parts(self, call: TwilioCaller, at: int, parts: list[str]) -> list[bytes]:
        """Wait until the prompt `parts` (cached renders: their exact size is known) have
        arrived from offset `at` and played; each part's audio as PCM16."""
        sizes = [await self.spoken_bytes(p) for p in parts]
        await call.until(
            lambda: (
                len(call.heard) >= at + sum(sizes) and call.marks_echoed == len(call.marks_received)
            )
        )
        out, offset = [], at
        for size in sizes:
            out.append(ulaw_to_pcm(bytes(call.heard[offset : offset + size])))
            offset += size
        return out

    async def until_heard(self, call: TwilioCaller, at: int, size: int) -> bytes:
        """Wait until about `size` bytes have arrived after offset `at` and every mark is
        echoed (the audio has "played"); what arrived from `at` on, as PCM16. About: espeak-ng
        renders of the same text differ by up to ~200 samples (its last chunk is cut at a
        callback boundary), and an uncached render (an agent's reply) is a new one."""
        least = at + size - SYNTH_SLACK_BYTES
        await call.until(
            lambda: len(call.heard) >= least and call.marks_echoed == len(call.marks_received)
        )
        return ulaw_to_pcm(bytes(call.heard[at:]))

    async def conversation_of(self, call: TwilioCaller) -> Conversation:
        call_id = f"twilio:{call.stream_sid}"

        async def find() -> Conversation | None:
            ids = [cid for cid, c in self.calls.live_calls().items() if c == call_id]
            if not ids:
                return None
            return await self.app[STORE].read(lambda uow: uow.conversation(ids[0]))

        return await eventually(find)

    async def conversation(self, conversation_id: int) -> Conversation:
        found = await self.app[STORE].read(lambda uow: uow.conversation(conversation_id))
        assert found is not None
        return found

    async def events(self, conversation_id: int) -> list[Event]:
        return await self.app[STORE].read(lambda uow: uow.events(conversation_id))

    async def steps(self, conversation_id: int) -> list[dict[str, Any]]:
        return [
            dict(e.payload)
            for e in await self.events(conversation_id)
            if e.kind is EventKind.CALL_STEP
        ]

    async def until_step(
        self, conversation_id: int, match: Callable[[dict[str, Any]], bool]
    ) -> None:
        async def found() -> bool:
            return any(match(s) for s in await self.steps(conversation_id))

        await eventually(found)

    async def picked(self, conversation_id: int) -> tuple[str, str, str]:
        """The call's rule, flow and time window, as its call.started event has them."""
        started = next(
            e.payload
            for e in await self.events(conversation_id)
            if e.kind is EventKind.CALL_STARTED
        )
        return started["rule"], started["flow"], started["window"]

    async def messages(self, conversation_id: int) -> list[Message]:
        return await self.app[STORE].read(lambda uow: uow.messages(conversation_id))

    async def ended(self, conversation_id: int) -> dict[str, Any]:
        async def end() -> dict[str, Any] | None:
            events = await self.events(conversation_id)
            return next((dict(e.payload) for e in events if e.kind is EventKind.CALL_ENDED), None)

        return await eventually(end)

    async def add_agent(self) -> int:
        agent = await self.app[AGENTS].add(AGENT_EMAIL, "Ann", Role.AGENT, AGENT_PASSWORD)
        return agent.id


async def start_phone_hub(
    aiohttp_client: Any, tmp_path: Path, flows: Path = FLOWS, **extra: Any
) -> AsyncIterator[PhoneHub]:
    """The hub from plain settings on a real port (Twilio must reach it over TCP), with a
    copy of `flows` the test may edit."""
    port = free_port()
    copy = tmp_path / flows.name
    copy.write_bytes(flows.read_bytes())  # noqa: ASYNC240 (a small file, before the hub runs)
    app = create_app(phone_settings(tmp_path, port, copy, **extra))
    await aiohttp_client(TestServer(app, port=port))
    # unsafe: keep the agent's session cookie for an IP-address host
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        hub = PhoneHub(app, f"http://127.0.0.1:{port}", http, copy)
        app[BUS].subscribe(hub.on_bus)
        yield hub
