"""The pure parts of live recognition: menu choices out of a grammar decoding, endpointing."""

from __future__ import annotations

import numpy as np
import pytest

from channels.speech.grammar import Word, choose, grammar_phrases
from channels.speech.vad import Endpointing, Segmenter
from tests.phone.audio import frames, korean_speech, silence

MENU = grammar_phrases(["예", "아니요", "상담원", "Talk to agent"])


def words(*spec: tuple[str, float, float]) -> list[Word]:
    out, at = [], 0.0
    for word, conf, length in spec:
        out.append(Word(word, conf, at, at + length))
        at += length
    return out


def test_the_phrase_covering_most_of_the_speech_is_the_choice() -> None:
    # The decoder's grammar is a loop: a stray short phrase before the real answer.
    assert choose(words(("아니요", 0.64, 0.33), ("상담원", 1.0, 0.54)), MENU) == ("상담원", 1.0)
    assert choose(words(("talk", 0.9, 0.3), ("to", 0.8, 0.1), ("agent", 1.0, 0.4)), MENU) == (
        "Talk to agent",
        0.9,
    )


def test_speech_the_grammar_does_not_cover_is_no_choice() -> None:
    forced = words(("예", 0.75, 0.05), ("아니요", 0.52, 0.21), ("둘", 0.94, 0.17), ("예", 1, 0.1))
    assert choose(forced, MENU) == ("", None)  # no phrase covers half of it
    assert choose(words(("예", 0.3, 0.4)), MENU) == ("", None)  # unsure
    assert choose([], MENU) == ("", None)


def test_unusable_grammars_are_refused() -> None:
    for bad in ([""], ["[unk]"], [3]):
        with pytest.raises(ValueError, match="grammar phrase"):
            grammar_phrases(bad)  # type: ignore[arg-type]
    assert grammar_phrases(["Yes", " yes "]) == {"yes": "Yes"}


def test_an_utterance_starts_on_voice_and_ends_after_the_trailing_silence() -> None:
    segmenter = Segmenter(8000, Endpointing(end_silence_ms=600))
    speech = korean_speech("상담원 연결해 주세요")
    loud = np.nonzero(np.abs(np.frombuffer(speech, dtype="<i2").astype(np.int32)) > 1000)[0]
    first, last = 50 + loud[0] // 160, 50 + loud[-1] // 160  # frames, after 1 s of silence
    marks, sent = [], 0
    for index, frame in enumerate(frames(silence(1) + speech + silence(2))):
        out, new = segmenter.push(frame)
        sent += len(out)
        marks += [(index, m) for m in new]
    assert [m for _, m in marks] == ["start", "end"]
    (start, _), (end, _) = marks
    assert first <= start <= first + 4  # three voiced frames in
    assert 30 <= end - last <= 40 and not segmenter.in_speech  # 600 ms and the VAD's hangover
    assert sent == 15 + (end - start)  # the 300 ms onset, then the utterance: no silence


def test_endpointing_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        Endpointing(aggressiveness=4)
    with pytest.raises(ValueError, match="end_silence_ms"):
        Endpointing(end_silence_ms=1000, max_utterance_ms=500)
    with pytest.raises(ValueError, match="8, 16, 32 or 48 kHz"):
        Segmenter(11_025, Endpointing())
