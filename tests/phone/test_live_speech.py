"""Live recognition of calls: real espeak-ng Korean, G.711 round trip, the real Korean model."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator

import numpy as np
import pytest

from channels.speech import Endpointing, VoskLiveSpeech, VoskStream
from hub.calls.audio import pcm_to_ulaw, resample, ulaw_to_pcm
from hub.ports import Heard, LiveSpeechToText
from tests.phone.audio import frames, korean_speech, silence

SENTENCE = "어서 오세요. 얼마예요?"
MENU = ["예", "아니요", "상담원", "환불"]


def telephone(pcm: bytes) -> bytes:
    """`pcm` as a caller's audio reaches the hub over a G.711 μ-law line."""
    return ulaw_to_pcm(pcm_to_ulaw(pcm))


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.fixture(scope="module")
def engine() -> Iterator[VoskLiveSpeech]:
    live = VoskLiveSpeech()  # the model itself is loaded once per process and shared
    yield live
    live.close()


@pytest.fixture(scope="module")
def sentence() -> bytes:
    return telephone(silence(0.4) + korean_speech(SENTENCE) + silence(1.2))


async def feed_all(stream: VoskStream, pcm: bytes, rate: int = 8000) -> list[tuple[int, Heard]]:
    """Feed `pcm` in 20 ms frames; (frame index, what was heard) pairs."""
    heard: list[tuple[int, Heard]] = []
    for index, frame in enumerate(frames(pcm, rate)):
        heard += [(index, h) for h in await stream.feed(frame)]
    return heard


def speech_end_frame(pcm: bytes, rate: int = 8000) -> int:
    """The 20 ms frame where the last loud sample is (the end of the caller's speech)."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    return int(np.nonzero(samples > 1000)[0][-1]) // (rate // 50)


async def test_a_sentence_gives_speech_partials_and_a_final_soon_after_it_ends(
    engine: VoskLiveSpeech, sentence: bytes
) -> None:
    port: LiveSpeechToText = engine  # mypy checks the engine implements the port
    stream = port.stream(sample_rate=8000)
    assert isinstance(stream, VoskStream)
    heard = await feed_all(stream, sentence)
    kinds = [h.kind for _, h in heard]
    assert kinds[0] == "speech" and kinds.count("speech") == 1
    assert kinds[-1] == "final" and kinds.count("final") == 1
    partials = [h.text for _, h in heard if h.kind == "partial"]
    assert partials and len(partials) <= 4.2 / 0.3  # throttled: one per 300 ms at most
    assert len(set(partials)) == len(partials)  # only changes are reported
    final_at, final = heard[-1]
    assert "얼마" in final.text and final.confidence is not None
    # The utterance ends 600 ms (30 frames) of silence after the speech, give or take the
    # VAD's hangover; counted in audio frames, so the machine's load cannot change it.
    assert 30 <= final_at - speech_end_frame(sentence) <= 45
    stream.close()


async def test_silence_and_line_noise_never_reach_the_recogniser(
    engine: VoskLiveSpeech, sentence: bytes
) -> None:
    rng = np.random.default_rng(7)
    hiss = telephone(rng.normal(0, 30, 8000 * 3).astype("<i2").tobytes())  # -60 dBFS line noise
    stream = engine.stream(sample_rate=8000)
    assert await feed_all(stream, silence(2) + hiss) == []
    assert stream.recognised_seconds == 0
    assert await stream.finish() is None
    # The same stream then hears a sentence: only the utterance (with its onset and its
    # trailing silence) is recognised, not the silence around it.
    await feed_all(stream, sentence)
    assert 2.0 < stream.recognised_seconds < len(sentence) / 2 / 8000 - 0.3
    stream.close()


@pytest.mark.parametrize("word", MENU)
async def test_a_menu_grammar_recognises_its_choices(engine: VoskLiveSpeech, word: str) -> None:
    stream = engine.stream(sample_rate=8000, grammar=MENU)
    heard = await feed_all(stream, telephone(korean_speech(word) + silence(1)))
    finals = [h for _, h in heard if h.kind == "final"]
    assert [f.text for f in finals] == [word]
    stream.close()


async def test_speech_outside_the_grammar_is_no_choice(engine: VoskLiveSpeech) -> None:
    stream = engine.stream(sample_rate=8000, grammar=MENU)
    heard = await feed_all(stream, telephone(korean_speech("날씨가 좋네요") + silence(1)))
    assert [h.text for _, h in heard if h.kind == "final"] == [""]
    stream.close()


async def test_finish_mid_utterance_gives_its_final(engine: VoskLiveSpeech) -> None:
    stream = engine.stream(sample_rate=8000)
    heard = await feed_all(stream, telephone(silence(0.3) + korean_speech(SENTENCE)))
    assert [h.kind for _, h in heard if h.kind == "final"] == []
    final = await stream.finish()
    assert final is not None and final.kind == "final" and "얼마" in final.text
    assert await stream.finish() is None  # nothing open any more
    stream.close()


async def test_streams_share_one_model_and_a_closed_stream_frees_its_recogniser(
    engine: VoskLiveSpeech, sentence: bytes
) -> None:
    before, memory = engine.recognisers, rss_mb()
    streams = [engine.stream(sample_rate=8000) for _ in range(4)]
    results = await asyncio.gather(*(feed_all(s, sentence) for s in streams))
    finals = [[h.text for _, h in heard if h.kind == "final"] for heard in results]
    assert all(f == finals[0] and len(f) == 1 for f in finals)
    assert engine.recognisers == before + 4
    # Four recognisers over one 260 MB model: far less than one more model.
    assert rss_mb() - memory < 120
    for stream in streams:
        stream.close()
        stream.close()  # idempotent
    assert engine.recognisers == before
    assert await streams[0].feed(sentence) == [] and await streams[0].finish() is None


async def test_a_new_stream_reuses_a_closed_ones_recogniser_without_its_words(
    engine: VoskLiveSpeech,
) -> None:
    # A caller who hangs up mid-sentence leaves a recogniser holding half an utterance; the
    # next call, which may get that (already warmed-up) recogniser, must hear only its own.
    cut = engine.stream(sample_rate=8000)
    await feed_all(cut, telephone(silence(0.3) + korean_speech(SENTENCE)))
    cut.close()
    fresh = engine.stream(sample_rate=8000)
    heard = await feed_all(fresh, telephone(silence(0.3) + korean_speech("환불") + silence(1)))
    finals = [h.text for _, h in heard if h.kind == "final"]
    assert len(finals) == 1 and "얼마" not in finals[0] and "어서" not in finals[0]
    fresh.close()


async def test_garbage_and_odd_lengths_never_break_a_stream(
    engine: VoskLiveSpeech, sentence: bytes
) -> None:
    noise = engine.stream(sample_rate=8000)
    chunks = random.Random(3)
    data = os.urandom(8000 * 2 * 2 + 1)  # two seconds of full-scale noise and a half sample
    at, heard = 0, []
    while at < len(data):
        size = chunks.randint(1, 777)
        heard += await noise.feed(data[at : at + size])
        at += size
    assert {h.kind for h in heard} <= {"speech", "partial", "final"}
    await noise.finish()
    noise.close()
    # Audio cut at odd byte offsets is put back together sample by sample.
    stream = engine.stream(sample_rate=8000)
    odd = []
    for start in range(0, len(sentence), 333):
        odd += await stream.feed(sentence[start : start + 333])
    assert "얼마" in next(h.text for h in odd if h.kind == "final")
    with pytest.raises(TypeError, match="PCM bytes"):
        await stream.feed("hello")  # type: ignore[arg-type]
    stream.close()


async def test_a_line_that_never_pauses_is_cut_into_utterances() -> None:
    engine = VoskLiveSpeech(endpointing=Endpointing(max_utterance_ms=1500), workers=1)
    try:
        stream = engine.stream(sample_rate=8000)
        tone = np.sin(np.arange(8000 * 4) * 2 * np.pi * 440 / 8000) * 8000
        buzz = telephone(tone.astype("<i2").tobytes())  # four seconds of a voiced-looking hum
        heard = await feed_all(stream, buzz)
        assert [h.kind for _, h in heard].count("final") >= 2
        stream.close()
        assert engine.recognisers == 0
    finally:
        engine.close()


async def test_wideband_calls_are_recognised(engine: VoskLiveSpeech, sentence: bytes) -> None:
    for rate in (16_000, 48_000):
        stream = engine.stream(sample_rate=rate)
        heard = await feed_all(stream, resample(sentence, 8000, rate), rate)
        assert "얼마" in next(h.text for _, h in heard if h.kind == "final"), rate
        stream.close()


def test_unusable_streams_are_refused_clearly(engine: VoskLiveSpeech) -> None:
    assert engine.languages() == frozenset({"ko"})
    assert engine.stream(sample_rate=8000, language="ko-KR").rate == 8000
    with pytest.raises(LookupError, match="no speech model for the language 'fr'"):
        engine.stream(sample_rate=8000, language="fr")
    with pytest.raises(ValueError, match="sample_rate"):
        engine.stream(sample_rate=100)
    with pytest.raises(ValueError, match="grammar phrase"):
        engine.stream(sample_rate=8000, grammar=["예", " "])
