"""Speech to text of whole recordings (Telegram voice notes).

Audio in any container ffmpeg reads (OGG/Opus voice notes, WAV, MP3) is decoded by an ffmpeg
child process to 16 kHz mono 16-bit PCM and recognised by Vosk. The model (hundreds of MB) is
loaded once, on first use or by `preload()`, and recognition runs on a small thread pool of its
own: it is CPU-bound and blocking, and must never run on the event loop.
"""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from channels.speech.models import load_model, packaged_model_path

SAMPLE_RATE = 16_000
CHUNK_BYTES = 32_000  # one second of 16 kHz 16-bit mono per AcceptWaveform call
DECODE_TIMEOUT_S = 120  # ffmpeg decodes minutes of audio in well under a second


async def decode_pcm(audio: bytes, *, max_seconds: float) -> bytes:
    """`audio` as 16 kHz mono signed 16-bit little-endian PCM, cut at `max_seconds`.

    Raises ValueError when ffmpeg cannot read it, FileNotFoundError when ffmpeg is missing.
    """
    proc = await asyncio.create_subprocess_exec(
        "ffmpeg",
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        "pipe:0",
        "-t",
        f"{max_seconds:g}",
        "-vn",
        "-ac",
        "1",
        "-ar",
        str(SAMPLE_RATE),
        "-f",
        "s16le",
        "pipe:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(DECODE_TIMEOUT_S):
            pcm, err = await proc.communicate(audio)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ValueError(f"decoding the audio took longer than {DECODE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        reason = err.decode(errors="replace").strip().splitlines()
        raise ValueError(f"ffmpeg cannot decode the audio: {reason[-1] if reason else '?'}")
    return pcm


class VoskSpeechToText:
    """The `SpeechToText` port over Vosk (offline Kaldi models) and ffmpeg."""

    def __init__(
        self, model_path: Path | None = None, *, max_seconds: float = 300, workers: int = 1
    ):
        self.model_path = model_path
        self.max_seconds = max_seconds
        # One recogniser thread by default: a transcription keeps a core busy, and the hub
        # runs on small machines next to its database.
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="omnihub-speech")

    async def transcribe(self, audio: bytes) -> str:
        """The words spoken in `audio`; "" when none are recognised; ValueError when the
        audio cannot be decoded."""
        pcm = await decode_pcm(audio, max_seconds=self.max_seconds)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._recognise, pcm)

    async def preload(self) -> None:
        """Load the model now (it takes seconds) instead of on the first voice note."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._loaded_model)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loaded_model(self) -> Any:
        # Shared with every other engine of the process that uses the same folder.
        return load_model(self.model_path or packaged_model_path())

    def _recognise(self, pcm: bytes) -> str:
        import vosk

        recognizer = vosk.KaldiRecognizer(self._loaded_model(), SAMPLE_RATE)
        parts: list[str] = []
        for start in range(0, len(pcm), CHUNK_BYTES):
            if recognizer.AcceptWaveform(pcm[start : start + CHUNK_BYTES]):
                parts.append(json.loads(recognizer.Result()).get("text", ""))
        parts.append(json.loads(recognizer.FinalResult()).get("text", ""))
        return " ".join(p for p in parts if p).strip()
