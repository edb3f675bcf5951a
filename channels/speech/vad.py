"""Voice-activity detection and endpointing of a live call's audio (pure, audio-clocked).

WebRTC's VAD (the GMM classifier from Chromium, `webrtcvad-wheels`) labels each 20 ms frame
voiced or not in microseconds, so silence costs next to nothing and never reaches the
recogniser. Time is the audio's own: a frame is 20 ms whatever the wall clock says, which
makes the segmenter deterministic and testable without sleeping.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

FRAME_MS = 20
VAD_RATES = frozenset({8000, 16000, 32000, 48000})  # what webrtcvad accepts


@dataclass(frozen=True, slots=True)
class Endpointing:
    """When an utterance starts and ends."""

    aggressiveness: int = 2  # webrtcvad 0..3: higher calls fewer noisy frames speech
    start_frames: int = 3  # voiced frames among the last `start_window` that start speech
    start_window: int = 5
    preroll_ms: int = 300  # audio before the start kept for the recogniser (the onset)
    end_silence_ms: int = 600  # trailing unvoiced audio that ends an utterance
    max_utterance_ms: int = 30_000  # a caller (or a noisy line) that never pauses is cut here
    # Frames quieter than this are silence whatever the VAD says: WebRTC's classifier is
    # level-independent and calls faint line hiss speech (measured: -60 dBFS μ-law noise).
    # Speech on a telephone line sits around -20 to -35 dBFS.
    min_level_dbfs: float = -50.0

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("the VAD aggressiveness is 0..3")
        if not 1 <= self.start_frames <= self.start_window:
            raise ValueError("start_frames must be between 1 and start_window")
        if self.end_silence_ms < FRAME_MS or self.max_utterance_ms <= self.end_silence_ms:
            raise ValueError("end_silence_ms must be ≥ 20 and below max_utterance_ms")


Mark = Literal["start", "end"]


class Segmenter:
    """Splits a stream of 20 ms frames into utterances.

    `push(frame)` returns the frames to recognise now (the pre-roll at the start, then every
    frame of the utterance including its trailing silence) and "start"/"end" marks.
    """

    def __init__(self, sample_rate: int, config: Endpointing):
        if sample_rate not in VAD_RATES:
            raise ValueError(f"the VAD needs 8, 16, 32 or 48 kHz audio, not {sample_rate} Hz")
        self.sample_rate = sample_rate
        self.frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._min_rms = 32768 * 10 ** (config.min_level_dbfs / 20)
        self._recent: deque[bool] = deque(maxlen=config.start_window)
        self._preroll: deque[bytes] = deque(maxlen=max(1, config.preroll_ms // FRAME_MS))
        self.in_speech = False
        self._silence_ms = 0
        self._utterance_ms = 0

    def push(self, frame: bytes) -> tuple[list[bytes], list[Mark]]:
        """One frame of exactly `frame_bytes` in; (frames for the recogniser, marks) out."""
        samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
        loud = float(np.sqrt(np.mean(samples * samples))) >= self._min_rms
        voiced = loud and self._vad.is_speech(frame, self.sample_rate)
        if not self.in_speech:
            self._recent.append(voiced)
            self._preroll.append(frame)
            if sum(self._recent) < self.config.start_frames:
                return [], []
            self.in_speech = True
            self._silence_ms = 0
            self._utterance_ms = len(self._preroll) * FRAME_MS
            frames = list(self._preroll)
            self._preroll.clear()
            self._recent.clear()
            return frames, ["start"]
        self._utterance_ms += FRAME_MS
        self._silence_ms = 0 if voiced else self._silence_ms + FRAME_MS
        if (
            self._silence_ms >= self.config.end_silence_ms
            or self._utterance_ms >= self.config.max_utterance_ms
        ):
            self.in_speech = False
            return [frame], ["end"]
        return [frame], []

    def reset(self) -> None:
        """Forget the open utterance (it was finished by other means)."""
        self.in_speech = False
        self._recent.clear()
        self._preroll.clear()
