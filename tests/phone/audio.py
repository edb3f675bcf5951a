"""Real telephone audio for the phone tests: Korean speech synthesised by espeak-ng."""

from __future__ import annotations

import io
import subprocess
import wave

from hub.calls.audio import resample

ESPEAK_RATE = 22_050  # espeak-ng's own output rate


def korean_speech(text: str, rate: int = 8000, *, words_per_minute: int = 140) -> bytes:
    """`text` spoken by espeak-ng's Korean voice as 16-bit mono PCM at `rate`.

    140 words a minute: slower than espeak's default, which the Korean Vosk model recognises
    far better. The WAV header is skipped by asking espeak-ng for raw samples on stdout.
    """
    wav = subprocess.run(
        ["espeak-ng", "-v", "ko", "-s", str(words_per_minute), "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    pcm = _wav_samples(wav)
    return resample(pcm, ESPEAK_RATE, rate)


def wav_bytes(pcm: bytes, rate: int = 8000) -> bytes:
    """16-bit mono PCM at `rate` as a WAV file (for ffmpeg, baresip and Chromium)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return out.getvalue()


def silence(seconds: float, rate: int = 8000) -> bytes:
    """Digital silence as 16-bit mono PCM."""
    return bytes(int(seconds * rate) * 2)


def frames(pcm: bytes, rate: int = 8000, ms: int = 20) -> list[bytes]:
    """`pcm` cut into frames of `ms` milliseconds, as a transport delivers it."""
    size = rate * ms // 1000 * 2
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def _wav_samples(wav: bytes) -> bytes:
    # espeak-ng writes a canonical 44-byte header with unknown sizes when it streams to stdout;
    # find the data chunk instead of trusting the size fields.
    at = wav.find(b"data")
    if wav[:4] != b"RIFF" or at < 0:
        raise ValueError("espeak-ng did not write a WAV")
    return wav[at + 8 :]
