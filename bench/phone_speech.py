"""Speech engines of the phone channel: recognition cost and latency, synthesis time.

    .venv/bin/python -m bench.phone_speech [--calls 4] [--rounds 2] [--stagger S]
        [--end-silence-ms 600]

Calls are simulated by `--calls` concurrent streams fed Korean espeak-ng sentences after a
G.711 μ-law round trip in 20 ms frames at real-time pace (the way a transport delivers
them). Reported: process CPU seconds per second of call audio (the recognition real-time
factor, per call), the time from the end of a caller's speech (the frame holding its last
loud sample) to the final result, and the synthesis time of a short sentence.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import numpy as np

from channels.speech import Endpointing, Pyttsx3Speech, VoskLiveSpeech
from hub.calls.audio import pcm_to_ulaw, ulaw_to_pcm
from tests.phone.audio import frames, korean_speech, silence

SENTENCES = ["어서 오세요. 얼마예요?", "상담원 연결해 주세요", "환불 받고 싶어요"]
RATE = 8000
PROMPTS = [
    ("ko", "상담원을 연결해 드리겠습니다."),
    ("en", "Let me put you through to an agent."),
    ("zh", "正在为您转接人工客服。"),
]


def last_loud_frame(pcm: bytes) -> int:
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    return int(np.nonzero(samples > 1000)[0][-1]) // (RATE // 50)


async def call(
    engine: VoskLiveSpeech, audio: list[bytes], latencies: list[float], delay: float
) -> None:
    await asyncio.sleep(delay)
    stream = engine.stream(sample_rate=RATE)
    start = time.perf_counter()
    for utterance in audio:
        end_frame = last_loud_frame(utterance)
        spoke_at = 0.0
        for index, frame in enumerate(frames(utterance, RATE)):
            # Real-time pace: frame n is due n x 20 ms after the call's start.
            start += 0.02
            await asyncio.sleep(max(0.0, start - time.perf_counter()))
            if index == end_frame:
                spoke_at = start  # when the caller's last sound reached the hub

            for heard in await stream.feed(frame):
                if heard.kind == "final":
                    latencies.append(time.perf_counter() - spoke_at)
    stream.close()


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"min {ms[0]:.0f} / median {statistics.median(ms):.0f} / p95 {p95:.0f} / "
        f"max {ms[-1]:.0f} ms (n={len(ms)})"
    )


async def main(calls: int, rounds: int, end_silence_ms: int, stagger: float) -> None:
    engine = VoskLiveSpeech(endpointing=Endpointing(end_silence_ms=end_silence_ms))
    await engine.preload()
    utterances = [
        ulaw_to_pcm(pcm_to_ulaw(silence(0.5) + korean_speech(s) + silence(1.5))) for s in SENTENCES
    ] * rounds
    seconds = sum(len(u) for u in utterances) / 2 / RATE
    latencies: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(call(engine, utterances, latencies, n * stagger) for n in range(calls)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{calls} concurrent calls, {seconds:.1f} s of audio each, fed in real time", end="")
    print(f", starting {stagger} s apart" if stagger else ", all speaking at once")
    print(f"  wall {wall:.1f} s (real time would be {seconds:.1f} s)")
    print(f"  recognition CPU per call: {cpu / calls / seconds:.3f} s per second of audio")
    print(f"  end of speech -> final result: {summary(latencies)}")
    print(f"  (of which the endpoint's trailing silence: {engine.endpointing.end_silence_ms} ms)")
    engine.close()

    tts = Pyttsx3Speech()
    await tts.preload()
    for language, text in PROMPTS:
        times = []
        for _ in range(7):
            t = time.perf_counter()
            await tts.synthesize(text, sample_rate=RATE, language=language)
            times.append(time.perf_counter() - t)
        print(f"synthesis of a short sentence ({language}, 8 kHz): {summary(times)}")
    tts.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--end-silence-ms", type=int, default=600)
    parser.add_argument("--stagger", type=float, default=0.0, help="seconds between call starts")
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds, args.end_silence_ms, args.stagger))
