"""Speech synthesis for live calls: pyttsx3 over espeak-ng, offline.

pyttsx3 is not thread-safe and its espeak driver initialises libespeak-ng once per process,
so one dedicated worker thread owns the engine and renders every request in turn; the event
loop only awaits it. espeak-ng renders a short sentence in tens of milliseconds (figures in
docs/phone.md, Speech), so one thread keeps up with many calls. The 22.05 kHz output is
resampled to the call's rate with libsoxr (`hub.calls.audio.resample`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import threading
import time
import wave
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.speech.live import normalise_language
from hub.calls.audio import resample

if TYPE_CHECKING:
    from hub.config import Settings

log = logging.getLogger(__name__)

# espeak-ng voice names by language: Korean (so the Korean Vosk model understands the hub in
# tests), American English, Mandarin ("cmn", espeak's name for Standard Chinese).
DEFAULT_VOICES: dict[str, str] = {"ko": "ko", "en": "en-us", "zh": "cmn"}
MIN_RATE, MAX_RATE = 8000, 48_000
RENDER_TIMEOUT_S = 30.0  # espeak renders minutes of speech in under a second


class SynthesisError(RuntimeError):
    """The synthesiser cannot speak (espeak-ng missing, a configured voice unknown)."""


class Pyttsx3Speech:
    """The `TextToSpeech` port over pyttsx3's espeak-ng driver.

    `voices` maps a language to an espeak-ng voice, over `DEFAULT_VOICES`; a language without
    one is spoken with the `default_language`'s voice. `max_chars` bounds one request (a
    ValueError beyond), `cache_size` the prompts kept by `cache=True` (least recently used
    go first).
    """

    def __init__(
        self,
        voices: Mapping[str, str] | None = None,
        *,
        default_language: str = "en",
        words_per_minute: int = 140,
        max_chars: int = 1000,
        cache_size: int = 128,
    ):
        self.voices = DEFAULT_VOICES | {normalise_language(k): v for k, v in (voices or {}).items()}
        self.default_language = normalise_language(default_language)
        if self.default_language not in self.voices:
            raise ValueError(f"no voice for the default language {default_language!r}")
        if not 80 <= words_per_minute <= 450 or max_chars < 1 or cache_size < 0:
            raise ValueError("words_per_minute is 80..450, max_chars ≥ 1, cache_size ≥ 0")
        self.words_per_minute = words_per_minute
        self.max_chars = max_chars
        self.cache_size = cache_size
        self.renders = 0  # how many texts espeak-ng actually rendered (cache misses)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="omnihub-tts")
        self._engine: Any = None
        self._espeak: Any = None  # pyttsx3's ctypes binding of libespeak-ng
        # Set by pyttsx3's "finished-utterance" (from espeak-ng's own thread): whether the
        # last run completed.
        self._finished = threading.Event()
        self._completed = False
        self._dir = tempfile.TemporaryDirectory(prefix="omnihub-tts-")
        self._cache: OrderedDict[tuple[str, str, int], bytes] = OrderedDict()
        self._rendering: dict[tuple[str, str, int], asyncio.Future[bytes]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Pyttsx3Speech:
        """The synthesiser as `speech_voices`, `speech_default_language` and
        `speech_words_per_minute` say."""
        return cls(
            settings.speech_voices,
            default_language=settings.speech_default_language,
            words_per_minute=settings.speech_words_per_minute,
        )

    def voice_for(self, language: str | None) -> str:
        """The espeak-ng voice that speaks `language` (the default's for an unknown one)."""
        key = normalise_language(language) if language else self.default_language
        return self.voices.get(key, self.voices[self.default_language])

    async def synthesize(
        self, text: str, *, sample_rate: int, language: str | None = None, cache: bool = False
    ) -> bytes:
        """`text` spoken for `language` as 16-bit mono PCM at `sample_rate`; b"" for blank
        text. ValueError for text over `max_chars` or an unusable rate, SynthesisError when
        espeak-ng cannot speak."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        if len(text) > self.max_chars:
            raise ValueError(
                f"text of {len(text)} characters is over the {self.max_chars} a prompt may have"
            )
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz, not {sample_rate!r}")
        text = " ".join(text.split())
        if not text:
            return b""
        voice = self.voice_for(language)
        if not cache or not self.cache_size:
            return await self._render(text, voice, sample_rate)
        key = (text, voice, sample_rate)
        if (hit := self._cache.get(key)) is not None:
            self._cache.move_to_end(key)
            return hit
        if (pending := self._rendering.get(key)) is not None:  # the same prompt, asked twice
            return await asyncio.shield(pending)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._rendering[key] = future
        try:
            pcm = await self._render(text, voice, sample_rate)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._rendering[key]
        future.set_result(pcm)
        self._cache[key] = pcm
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return pcm

    async def preload(self) -> None:
        """Start espeak-ng and check every configured voice now (SynthesisError if one is
        unknown), instead of on the first prompt."""
        loop = asyncio.get_running_loop()
        known = await loop.run_in_executor(self._worker, self._voice_names)
        unknown = sorted({v for v in self.voices.values() if v.casefold() not in known})
        if unknown:
            raise SynthesisError(f"espeak-ng has no voice {', '.join(unknown)}")

    def close(self) -> None:
        """Stop the worker thread and remove its scratch files."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self._dir.cleanup()

    async def _render(self, text: str, voice: str, sample_rate: int) -> bytes:
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._worker, self._render_blocking, text, voice)
        try:
            pcm, rate = await asyncio.wait_for(job, RENDER_TIMEOUT_S)
        except TimeoutError:
            raise SynthesisError(f"espeak-ng took over {RENDER_TIMEOUT_S} s") from None
        # Resampling a few seconds of audio takes about a millisecond: fine on the loop.
        return resample(pcm, rate, sample_rate)

    # --- on the worker thread ------------------------------------------------------------

    def _loaded_engine(self) -> Any:
        if self._engine is None:
            try:
                import pyttsx3
                from pyttsx3.drivers import _espeak
                from pyttsx3.drivers import espeak as espeak_driver
            except (ImportError, OSError) as exc:  # OSError: libespeak-ng missing
                raise SynthesisError(f"pyttsx3 with espeak-ng is unavailable: {exc}") from None
            # The driver announces every saved file with a bare print() on stdout, which is
            # the hub's console; silence it in that module only.
            espeak_driver.print = lambda *_args, **_kwargs: None
            try:
                self._engine = pyttsx3.init("espeak")
            except RuntimeError as exc:
                raise SynthesisError(f"espeak-ng cannot start: {exc}") from None
            self._engine.setProperty("rate", self.words_per_minute)
            self._engine.connect("finished-utterance", self._on_finished)
            self._espeak = _espeak
        return self._engine

    def _wait_idle(self) -> None:
        # libespeak-ng tells when it is idle only through espeak_IsPlaying(): poll it (it
        # is idle within milliseconds of an utterance's last callback).
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        while self._espeak is not None and self._espeak.IsPlaying():
            if time.monotonic() > deadline:
                raise SynthesisError(f"espeak-ng stayed busy for {RENDER_TIMEOUT_S} s")
            time.sleep(0.002)

    def _on_finished(self, name: object = None, completed: bool = True) -> None:
        self._completed = completed
        self._finished.set()

    def _voice_names(self) -> set[str]:
        names: set[str] = set()
        for voice in self._loaded_engine().getProperty("voices"):
            names.add(voice.id.casefold())  # "sit/cmn"
            names.add(voice.id.rsplit("/", 1)[-1].casefold())  # "cmn"
            names.update(lang.casefold() for lang in voice.languages or ())
        return names

    def _render_blocking(self, text: str, voice: str) -> tuple[bytes, int]:
        engine = self._loaded_engine()
        try:
            engine.setProperty("voice", voice)
            # The rate again with every voice: a hub occasionally spoke an agent's reply at
            # espeak's default pace (0.7 of the length: rate 200, which pyttsx3's driver sets
            # when it starts) instead of `words_per_minute`; libespeak-ng applies voice and
            # parameter changes on its own thread, so set both right before each render.
            engine.setProperty("rate", self.words_per_minute)
        except ValueError as exc:
            raise SynthesisError(f"espeak-ng has no voice {voice!r}: {exc}") from None
        path = Path(self._dir.name) / "utterance.wav"
        # pyttsx3's espeak driver (2.99) runs its queued endLoop as soon as its loop starts,
        # and that endLoop cancels espeak-ng if espeak-ng still reports itself playing —
        # which it does for a moment after the previous utterance's last callback. On a busy
        # machine about one render in 300 was cut so (a caller heard half a prompt, or none),
        # and a cancelled run's late end could even land in the next run's file. So: start
        # a run only once espeak-ng is idle, wait for the driver's "finished-utterance" (not
        # for `runAndWait` to return), and render a run it reports cut short once more.
        for _attempt in (1, 2):
            self._wait_idle()
            path.unlink(missing_ok=True)
            self._finished.clear()
            try:
                engine.save_to_file(text, str(path))
                engine.runAndWait()
            except Exception as exc:  # pyttsx3 raises whatever its driver does
                # A failed run can leave pyttsx3's loop marked as running; the next request
                # starts from a fresh engine (espeak-ng itself stays initialised).
                self._engine = None
                raise SynthesisError(f"espeak-ng failed on the text: {exc}") from None
            if not self._finished.wait(RENDER_TIMEOUT_S):
                self._engine = None
                raise SynthesisError(f"espeak-ng did not finish within {RENDER_TIMEOUT_S} s")
            if self._completed:
                break
            log.warning("espeak-ng cut a rendering short; rendering it again")
        else:
            raise SynthesisError("espeak-ng cut the rendering short twice")
        try:
            with wave.open(str(path), "rb") as wav:
                pcm, rate = wav.readframes(wav.getnframes()), wav.getframerate()
        except (OSError, wave.Error, EOFError) as exc:
            raise SynthesisError(f"espeak-ng wrote no audio for the text: {exc}") from None
        if not pcm:
            raise SynthesisError("espeak-ng wrote no audio for the text")
        self.renders += 1
        log.debug("rendered %d characters with %s: %.2f s", len(text), voice, len(pcm) / 2 / rate)
        return pcm, rate
