"""The pure-core fake audio for the call controller's tests: a scripted speech engine and an
in-memory media session.

Until the speech engines (channels.speech: VoskLiveSpeech, Pyttsx3Speech) merge, the
controller is tested through its public `CallControl` interface with these: "speech" is a
frame that carries its words (`spoken("...")`), and "synthesised audio" carries the text and
language it says, so a test reads back exactly what the caller heard. Everything else is
real (the hub app, its SQLite store, services, outbox, bus). The integrator adds end-to-end
tests with real espeak-ng audio and the real Vosk model after merge.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from hub.calls.media import AudioIn, CallEvent, CallInfo, Dtmf, HangUp, until_hang_up
from hub.ports import Heard

_SAY = b"SAY:"
_TTS = b"TTS:"


def spoken(text: str) -> bytes:
    """A frame of "speech" the scripted recogniser hears as `text`."""
    data = _SAY + text.encode()
    return data + b"\0" * (len(data) % 2)


def silence(ms: int = 20, rate: int = 8000) -> bytes:
    return b"\0\0" * (rate * ms // 1000)


@dataclass(frozen=True, slots=True)
class Utterance:
    language: str | None
    text: str


def heard_in(pcm: bytes) -> Utterance | None:
    """What a scripted synthesis says (None for other audio, e.g. the voicemail beep)."""
    if not pcm.startswith(_TTS):
        return None
    data = json.loads(pcm[len(_TTS) :].rstrip(b"\0"))
    return Utterance(data["language"], data["text"])


class ScriptedStream:
    def __init__(self, language: str | None, grammar: Sequence[str]):
        self.language = language
        self.grammar = tuple(grammar)
        self.closed = False

    async def feed(self, pcm: bytes) -> list[Heard]:
        if not pcm.startswith(_SAY):
            return []  # silence
        text = pcm[len(_SAY) :].rstrip(b"\0").decode()
        return [Heard("speech"), Heard("partial", text.split()[0]), Heard("final", text, 0.9)]

    async def finish(self) -> Heard | None:
        return None

    def close(self) -> None:
        self.closed = True


class ScriptedSpeech:
    """`LiveSpeechToText` and `TextToSpeech` for English and Chinese, scripted."""

    def __init__(self, languages: frozenset[str] = frozenset({"en", "zh"})):
        self._languages = languages
        self.streams: list[ScriptedStream] = []

    def languages(self) -> frozenset[str]:
        return self._languages

    def stream(
        self, *, sample_rate: int, language: str | None = None, grammar: Sequence[str] = ()
    ) -> ScriptedStream:
        if language is not None and language not in self._languages:
            raise LookupError(language)
        stream = ScriptedStream(language, grammar)
        self.streams.append(stream)
        return stream

    async def synthesize(
        self, text: str, *, sample_rate: int, language: str | None = None, cache: bool = False
    ) -> bytes:
        data = _TTS + json.dumps({"language": language, "text": text}).encode()
        return data + b"\0" * (len(data) % 2)


@dataclass
class MemorySession:
    """A `MediaSession` in memory: the test is the caller."""

    info: CallInfo
    hold_playback: bool = False  # play() waits until stop_playback or the end of the call
    heard: list[Utterance] = field(default_factory=list)
    stops: int = 0
    _events: asyncio.Queue[CallEvent] = field(default_factory=asyncio.Queue)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _cut: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: bool = False

    async def events(self) -> AsyncIterator[CallEvent]:
        async for event in until_hang_up(self._events):
            yield event

    async def play(self, pcm: bytes) -> bool:
        if self._ended:
            return False
        said = heard_in(pcm)
        if said is not None:
            self.heard.append(said)
            self._changed.set()
        if self.hold_playback:
            self._cut.clear()
            await self._cut.wait()
            return False
        await asyncio.sleep(0)
        return not self._ended

    def stop_playback(self) -> None:
        self.stops += 1
        self._cut.set()

    async def hang_up(self) -> None:
        self.end("hub", "hang_up")

    # --- the caller -----------------------------------------------------------------------

    def press(self, digits: str) -> None:
        for d in digits:
            self._events.put_nowait(Dtmf(d))

    def say(self, text: str) -> None:
        self._events.put_nowait(AudioIn(spoken(text)))
        self._events.put_nowait(AudioIn(silence(rate=self.info.sample_rate)))

    def audio(self, pcm: bytes) -> None:
        self._events.put_nowait(AudioIn(pcm))

    def end(self, by: str = "caller", reason: str = "BYE") -> None:
        if not self._ended:
            self._ended = True
            self._cut.set()
            self._events.put_nowait(HangUp(by, reason))  # type: ignore[arg-type]

    async def until_heard(self, check: Callable[[str], bool], timeout: float = 10.0) -> str:
        """Wait (bounded) until the caller has heard something `check` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                for u in self.heard:
                    if check(u.text):
                        return u.text
                self._changed.clear()
                await self._changed.wait()
