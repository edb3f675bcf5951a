"""Speech synthesis for calls: pyttsx3 over espeak-ng, heard back by the real Korean model."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from channels.speech import (
    Pyttsx3Speech,
    SynthesisError,
    VoskLiveSpeech,
    VoskSpeechToText,
)
from hub.ports import TextToSpeech
from tests.phone.audio import frames, silence, wav_bytes

PROMPT = "어서 오세요. 얼마예요?"


@pytest.fixture(scope="module")
def tts() -> Iterator[Pyttsx3Speech]:
    speech = Pyttsx3Speech()
    yield speech
    speech.close()


@pytest.fixture(scope="module")
def live() -> Iterator[VoskLiveSpeech]:
    engine = VoskLiveSpeech()
    yield engine
    engine.close()


async def heard(live: VoskLiveSpeech, pcm: bytes, rate: int, grammar: list[str]) -> str:
    stream = live.stream(sample_rate=rate, grammar=grammar)
    said = []
    for frame in frames(pcm + silence(1, rate), rate):
        said += await stream.feed(frame)
    stream.close()
    return " / ".join(h.text for h in said if h.kind == "final")


@pytest.mark.parametrize("rate", [8000, 16_000])
async def test_prompts_are_heard_back_by_the_recogniser(
    tts: Pyttsx3Speech, live: VoskLiveSpeech, rate: int
) -> None:
    port: TextToSpeech = tts  # mypy checks the synthesiser implements the port
    pcm = await port.synthesize(PROMPT, sample_rate=rate, language="ko")
    assert 1.5 < len(pcm) / 2 / rate < 4  # a short sentence, at the asked rate
    assert "예요" in await heard(live, pcm, rate, [])
    # Menu words, the way a caller's choice is recognised (narrowband espeak-ng Korean is
    # hard for the model in free recognition; a grammar hears it reliably).
    menu = ["예", "아니요", "상담원", "환불"]
    for word in menu:
        pcm = await tts.synthesize(word, sample_rate=rate, language="ko", cache=True)
        assert await heard(live, pcm, rate, menu) == word


async def test_a_wideband_prompt_is_transcribed_whole(tts: Pyttsx3Speech) -> None:
    pcm = await tts.synthesize(PROMPT, sample_rate=16_000, language="ko-KR")
    engine = VoskSpeechToText()
    try:
        text = await engine.transcribe(wav_bytes(pcm, 16_000))
        assert "어서 오세요" in text, (text, len(pcm))
    finally:
        engine.close()


async def test_cached_prompts_are_rendered_once(tts: Pyttsx3Speech) -> None:
    before = tts.renders
    text = "상담원을 연결합니다"
    first, second = await asyncio.gather(
        tts.synthesize(text, sample_rate=8000, language="ko", cache=True),
        tts.synthesize(text, sample_rate=8000, language="ko", cache=True),
    )
    again = await tts.synthesize(f" {text} ", sample_rate=8000, language="ko", cache=True)
    assert first == second == again and tts.renders == before + 1
    # Another rate is another rendering; uncached text is rendered every time.
    wide = await tts.synthesize(text, sample_rate=16_000, language="ko", cache=True)
    assert abs(len(wide) - 2 * len(first)) <= 64  # soxr's edges
    await tts.synthesize("Thank you", sample_rate=8000)
    await tts.synthesize("Thank you", sample_rate=8000)
    assert tts.renders == before + 4


async def test_the_cache_is_bounded() -> None:
    small = Pyttsx3Speech(cache_size=2)
    try:
        for word in ("one", "two", "three", "one"):
            await small.synthesize(word, sample_rate=8000, cache=True)
        assert small.renders == 4  # "one" was evicted by "three"
        await small.synthesize("three", sample_rate=8000, cache=True)
        assert small.renders == 4
    finally:
        small.close()


async def test_voices_follow_the_language(tts: Pyttsx3Speech) -> None:
    assert tts.voice_for("zh-CN") == "cmn" and tts.voice_for("ko") == "ko"
    english = await tts.synthesize("Press one for yes.", sample_rate=8000, language="en")
    unknown = await tts.synthesize("Press one for yes.", sample_rate=8000, language="fr")
    # A language without a voice gets the default (English) one; espeak-ng's output varies
    # by a few samples from one rendering to the next, so compare lengths.
    assert abs(len(english) - len(unknown)) <= len(english) // 100
    assert english[:1000] == unknown[:1000]
    chinese = await tts.synthesize("您好，请问有什么可以帮您？", sample_rate=8000, language="zh")
    assert len(chinese) > 8000  # Mandarin, not "Chinese letter" spelled out or nothing
    await tts.preload()  # every default voice exists in espeak-ng


async def test_bad_requests_get_clear_errors(tts: Pyttsx3Speech) -> None:
    with pytest.raises(ValueError, match="over the 1000"):
        await tts.synthesize("가" * 1001, sample_rate=8000)
    with pytest.raises(ValueError, match="sample_rate"):
        await tts.synthesize("hello", sample_rate=4000)
    assert await tts.synthesize(" \n ", sample_rate=8000) == b""
    assert await tts.synthesize("still speaking", sample_rate=8000)  # the worker lives on
    wrong = Pyttsx3Speech({"en": "no-such-voice"})
    try:
        with pytest.raises(SynthesisError, match="no-such-voice"):
            await wrong.preload()
    finally:
        wrong.close()
