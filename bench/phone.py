"""Phone benchmark (issue #19): concurrent Twilio calls at real-time pace against a real hub.

    .venv/bin/python bench/phone.py [--calls 1,2,4,6,8] [--utterances 2] [--end-silence-ms 600]
        [--stagger 6] [--quick]

Method
------
Hub. `python -m hub serve` (bench/servers.py: fresh SQLite data dir, a free loopback port,
ready on `GET /readyz`) with the front-line bot on, `channels.voice.twilio` (no auth token:
the webhook is open on loopback) and a Korean flow (`FLOWS` below) whose `bot` step sends the
caller's words to the bot and speaks its reply, so every caller utterance gets a spoken
answer: with an empty knowledge base the first utterance is a miss ("no answer", spoken) and
the second a hand-off (spoken, then the queue step's "please hold"). The packaged Korean Vosk
model hears the caller; espeak-ng speaks. `--end-silence-ms` is passed to the hub as
`speech_end_silence_ms`.

Callers. Korean sentences are synthesised once, up front, with espeak-ng (voice ko, 140
words a minute), cut just after their last loud sample (|x| > 1000) so the last frame of an
utterance is its last speech frame. Each call is a `tests.phone.twilio_caller.TwilioCaller`
(voice webhook, TwiML, websocket stream; marks echoed at the pace a phone would play the
audio). A call's line sends one 20 ms μ-law frame every 20 ms from its first second to its
hang-up, without drift (`Line`): the caller's speech when there is some, digital silence
otherwise, as Twilio does. A call: dial, wait until the greeting has played (every mark
echoed, no audio for 0.4 s), then `--utterances` times: say a sentence, wait for the hub's
reply to start, wait until it has played; then hang up. In a step of N calls, call i starts
at i × stagger / N seconds (`--stagger`, default 6 s, about one speak-and-listen cycle of the
script: at N = 4 one or two callers speak at any moment, as with independent calls, instead
of all of them at once; `--stagger 0` is that lockstep worst case).
All callers run in this one process (one core; the hub has the other), on one event loop.
Before the steps, one warm-up call (the same script) runs against the fresh hub: the first
recognition in a process pays a one-off warm-up of the model's decoding graph (up to about
2 s more on the first utterance, measured). It is reported on its own line ("first call") and
in the JSON line (`first_call_max_ms`), not in the steps, which measure the steady state.

Measured, per utterance (one clock: this process's monotonic loop time):

* eos: when the frame holding the utterance's last speech sample was handed to the socket;
* first audio: when the first hub media frame after the utterance arrived;
* eos → audio = first audio − eos: what the issue's target is about (p50/p95 nearest rank);
* hub lag = eos → audio − end silence: how far behind real time the hub answered. A hub
  with no processing cost answers exactly when the endpoint's trailing silence has passed,
  so the lag is all the hub's own work (recognition backlog and finalisation, message store,
  bot turn, outbox, synthesis, transport) — the "lag of the hub's processing";
* hub real-time factor of the utterance = (first audio − first frame of the utterance) /
  (utterance duration + end silence): wall time the hub needed to hear and answer it over
  the time that takes at zero cost (1.0 = real time).

Per call: its hub RTF and lag are the largest of its utterances'; its line RTF is the wall
time from its first to last frame sent over the audio time sent (the caller itself keeping
real time; the largest lateness of any frame is reported as sender lag). A call *keeps real
time* when every utterance was answered within `--reply-timeout` s, its hub lag stayed ≤ 1 s
and its line lateness ≤ 1 s. Steps run in the order given; max_calls is the largest N whose
calls all kept real time (the steps stop after the first one that does not). The baseline is
the N=1 step of the same run: every step's p50/p95 is also shown as a multiple of it.

Output: a table, then one JSON line (last line of stdout) with max_calls and eos → audio
p50/p95 at `--target-calls` (4) concurrent calls (or the largest step measured below it).
Targets: max_calls ≥ 4 and p95 ≤ 700 ms. Exit status 0 when the run was clean (targets met
or not), 1 when the hub failed or a call errored.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Run as `bench/phone.py` like the other benchmarks: sys.path[0] is bench/ (benchlib,
# servers); the worktree root goes first so `hub`, `channels` and the test caller are this
# checkout's, not whatever the shared editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import numpy as np
import servers
from benchlib import in_scratch_dir, log, percentile

from hub.calls.audio import pcm_to_ulaw
from tests.phone.audio import korean_speech
from tests.phone.twilio_caller import FRAME_BYTES, FRAME_S, TwilioCaller

TARGET_CALLS = 4
TARGET_P95_MS = 700.0
MAX_LAG_S = 1.0  # a call keeps real time while the hub answers within this of the endpoint
QUIET_S = 0.4  # no hub audio for this long (and every mark echoed): the prompt has played
RATE = 8000
LOUD = 1000  # a sample above this is speech (espeak-ng's pauses are far below)
SILENT_FRAME = b"\xff" * FRAME_BYTES  # μ-law digital silence
SENTENCES = [  # one breath each: no pause inside that an endpoint could take for the end
    "주문한 물건이 아직 안 왔어요",
    "환불 받고 싶어요",
    "배송비가 얼마예요",
    "비밀번호를 잊어버렸어요",
]

# The benchmark's line: the bot answers every utterance (see the module doc).
FLOWS = """\
languages: [ko]
rules:
  - name: bench
    numbers: ["*"]
    inbox: phone
    open: main
flows:
  main:
    start: ask
    steps:
      ask:
        type: bot
        say: "질문해 주세요."
        handoff: hold
        silence_s: 60
        on_silence: bye
      hold:
        type: queue
        say: "잠시만 기다려 주세요."
        max_wait_s: 600
        on_timeout: bye
      bye:
        type: hangup
        say: "안녕히 가세요."
"""


class BenchError(RuntimeError):
    """A call could not be made (the hub refused or dropped it)."""


@dataclass(frozen=True)
class Settings:
    """The resolved command line."""

    steps: tuple[int, ...]
    utterances: int
    end_silence_ms: int
    stagger: float
    reply_timeout: float
    target_calls: int


@dataclass(frozen=True)
class Utterance:
    """One sentence ready to send: μ-law frames, the last one holding the last speech."""

    text: str
    frames: tuple[bytes, ...]

    @property
    def seconds(self) -> float:
        return len(self.frames) * FRAME_S


@dataclass
class CallResult:
    """What one call measured."""

    latencies: list[float] = field(default_factory=list)  # eos -> first audio, s
    rtfs: list[float] = field(default_factory=list)  # per utterance
    unanswered: int = 0
    early: int = 0  # the hub answered before the utterance ended (cut by the endpoint)
    line_rtf: float = 0.0
    sender_lag: float = 0.0
    error: str | None = None

    def hub_lag(self, end_silence: float) -> float:
        return max((x - end_silence for x in self.latencies), default=0.0)

    def keeps_real_time(self, end_silence: float) -> bool:
        return (
            self.error is None
            and not self.unanswered
            and self.hub_lag(end_silence) <= MAX_LAG_S
            and self.sender_lag <= MAX_LAG_S
        )


@dataclass
class StepResult:
    """One step: N concurrent calls."""

    calls: int
    results: list[CallResult]
    wall_s: float
    hub_cpu_s: float | None

    def latencies(self) -> list[float]:
        return sorted(x for r in self.results for x in r.latencies)

    def ok(self, end_silence: float) -> bool:
        return all(r.keeps_real_time(end_silence) for r in self.results)


# --------------------------------------------------------------------------- audio


def prepare(text: str) -> Utterance:
    """`text` as espeak-ng Korean μ-law frames, ending with the frame of its last loud sample."""
    pcm = korean_speech(text, RATE)
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.nonzero(samples > LOUD)[0]
    if not len(loud):
        raise BenchError(f"espeak-ng said nothing for {text!r}")
    end = (int(loud[-1]) // (RATE // 50) + 1) * (RATE // 50) * 2
    ulaw = pcm_to_ulaw(pcm[:end])
    return Utterance(text, tuple(ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), 160)))


class Line:
    """A call's upstream audio: one frame every 20 ms without drift, speech when queued,
    silence otherwise (a phone line never stops sending)."""

    def __init__(self, call: TwilioCaller):
        self.call = call
        self._queue: deque[tuple[bytes, asyncio.Future[float] | None]] = deque()
        self.sent = 0
        self.lateness = 0.0
        self.started = 0.0
        self.last_sent = 0.0
        self._task = asyncio.create_task(self._run())

    def say(self, utterance: Utterance) -> tuple[asyncio.Future[float], asyncio.Future[float]]:
        """Queue the utterance; futures resolve with the loop times its first and last frames
        were sent."""
        loop = asyncio.get_running_loop()
        first: asyncio.Future[float] = loop.create_future()
        last: asyncio.Future[float] = loop.create_future()
        n = len(utterance.frames)
        for i, frame in enumerate(utterance.frames):
            self._queue.append((frame, first if i == 0 else last if i == n - 1 else None))
        return first, last

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.started = loop.time()
        while True:
            due = self.started + self.sent * FRAME_S
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.lateness = max(self.lateness, loop.time() - due)
            frame, done = self._queue.popleft() if self._queue else (SILENT_FRAME, None)
            media = {"track": "inbound", "payload": base64.b64encode(frame).decode()}
            await self.call.send({"event": "media", "media": media})
            self.sent += 1
            self.last_sent = loop.time()
            if done is not None and not done.done():
                done.set_result(self.last_sent)

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    def rtf(self) -> float:
        """Wall time from the first to the last frame over the audio time they carry."""
        if self.sent < 2:
            return 1.0
        return (self.last_sent - self.started) / ((self.sent - 1) * FRAME_S)


async def played(call: TwilioCaller, limit_s: float = 30.0) -> None:
    """Wait (at most `limit_s`) until what the hub sent has played: every mark echoed and
    no audio for QUIET_S."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    size, since = len(call.heard), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)  # the benchmark's own client: polling costs it nothing real
        if len(call.heard) != size:
            size, since = len(call.heard), loop.time()
        elif call.marks_echoed >= len(call.marks_received) and loop.time() - since >= QUIET_S:
            return


# --------------------------------------------------------------------------- a call


async def one_call(
    http: aiohttp.ClientSession,
    base_url: str,
    index: int,
    delay: float,
    utterances: Sequence[Utterance],
    settings: Settings,
) -> CallResult:
    """Dial after `delay`, speak, time the replies, hang up."""
    result = CallResult()
    end_silence = settings.end_silence_ms / 1000
    await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    try:
        call = await TwilioCaller.dial(
            http, base_url, caller=f"+8210{5550000 + index:07d}", marks="realtime"
        )
    except (AssertionError, aiohttp.ClientError) as exc:
        result.error = f"dial: {exc}"
        return result
    line = Line(call)
    try:
        await call.until(lambda: len(call.heard) > 0, timeout=settings.reply_timeout)
        await played(call)
        for u in range(settings.utterances):
            utterance = utterances[(index + u) % len(utterances)]
            before = len(call.heard)
            first, last = line.say(utterance)

            def answered(before: int = before) -> bool:
                return len(call.heard) > before

            try:
                await call.until(answered, timeout=60)
            except TimeoutError:
                result.unanswered += 1
                continue
            heard_at = loop.time()
            if not last.done():  # the hub spoke before the caller finished: cut short
                result.early += 1
                await last
                await played(call)
                continue
            eos = last.result()
            result.latencies.append(heard_at - eos)
            result.rtfs.append((heard_at - first.result()) / (utterance.seconds + end_silence))
            await played(call)
        result.line_rtf = line.rtf()
        result.sender_lag = line.lateness
        await line.close()
        await call.stop()
    except (TimeoutError, ConnectionError, aiohttp.ClientError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        await line.close()
        await call.finish()
    return result


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (Linux /proc), None when unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_step(
    base_url: str, pid: int | None, n: int, utterances: Sequence[Utterance], settings: Settings
) -> StepResult:
    """N calls, staggered over `settings.stagger` seconds."""
    cpu0 = process_cpu(pid) if pid else None
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        results = await asyncio.gather(
            *(
                one_call(http, base_url, i, i * settings.stagger / n, utterances, settings)
                for i in range(n)
            )
        )
    cpu1 = process_cpu(pid) if pid else None
    hub_cpu = cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None
    return StepResult(n, list(results), time.monotonic() - started, hub_cpu)


# --------------------------------------------------------------------------- report


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


def print_report(
    settings: Settings,
    steps: list[StepResult],
    warmup: StepResult | None,
    load_at_start: float,
    ready_s: float,
) -> None:
    """The human-readable table (stdout)."""
    end_silence = settings.end_silence_ms / 1000
    base = steps[0].latencies() if steps and steps[0].calls == 1 else []
    base_p50, base_p95 = percentile(base, 50), percentile(base, 95)
    print()
    print(
        f"omnihub phone benchmark — Twilio Media Streams, {settings.utterances} utterances a "
        f"call, end silence {settings.end_silence_ms} ms, calls staggered over "
        f"{settings.stagger:g} s; {os.cpu_count()} CPUs (1-min load average "
        f"{load_at_start:.2f} before the run), Python {platform.python_version()}; "
        f"hub ready in {ready_s:.1f} s"
    )
    head = (
        f"{'calls':>5} {'answered':>9} {'eos→audio p50':>14} {'p95':>6} {'max':>6} "
        f"{'p50/p95 vs N=1':>15} {'hub lag max':>12} {'hub RTF med/max':>16} "
        f"{'line RTF max':>13} {'sender lag':>11} {'hub CPU/s':>10} {'real time':>10}"
    )
    print(head)
    for step in steps:
        lat = step.latencies()
        p50, p95 = percentile(lat, 50), percentile(lat, 95)
        rtfs = sorted(max(r.rtfs, default=0.0) for r in step.results)
        answered = sum(len(r.latencies) for r in step.results)
        asked = step.calls * settings.utterances
        vs = (
            f"{p50 / base_p50:.2f}×/{p95 / base_p95:.2f}×"
            if p50 and p95 and base_p50 and base_p95
            else "-"
        )
        cpu = f"{step.hub_cpu_s / step.wall_s:.2f}" if step.hub_cpu_s is not None else "-"
        print(
            f"{step.calls:>5} {f'{answered}/{asked}':>9} {ms(p50):>14} {ms(p95):>6} "
            f"{ms(lat[-1] if lat else None):>6} {vs:>15} "
            f"{ms(max(r.hub_lag(end_silence) for r in step.results)):>12} "
            f"{f'{statistics.median(rtfs):.2f}/{rtfs[-1]:.2f}':>16} "
            f"{max(r.line_rtf for r in step.results):>13.3f} "
            f"{ms(max(r.sender_lag for r in step.results)):>11} {cpu:>10} "
            f"{'yes' if step.ok(end_silence) else 'NO':>10}"
        )
        for i, r in enumerate(step.results):
            if r.error or r.unanswered or r.early:
                print(
                    f"      call {i}: error={r.error} unanswered={r.unanswered} cut short={r.early}"
                )
    if warmup is not None:
        first = warmup.latencies()
        print(
            f"first call after start-up (warm-up, not in the steps): eos→audio "
            f"{', '.join(ms(x) for x in first) or '-'} ms"
        )
    print("(ms; hub lag = eos→audio − end silence; hub CPU/s = hub process CPU s per wall s)")


def at_target(steps: list[StepResult], target: int) -> StepResult | None:
    """The step of `target` calls, else the largest step below it."""
    below = [s for s in steps if s.calls <= target]
    return max(below, key=lambda s: s.calls) if below else None


def summary(
    settings: Settings, steps: list[StepResult], warmup: StepResult | None
) -> dict[str, object]:
    """The final JSON line's content."""
    end_silence = settings.end_silence_ms / 1000
    max_calls = 0
    for step in steps:
        if not step.ok(end_silence):
            break
        max_calls = step.calls
    target = at_target(steps, settings.target_calls)
    lat = target.latencies() if target else []
    base = steps[0].latencies() if steps and steps[0].calls == 1 else []

    def r(x: float | None) -> float | None:
        return None if x is None else round(x * 1000, 1)

    p95 = r(percentile(lat, 95))
    return {
        "bench": "phone",
        "max_calls": max_calls,
        "eos_to_audio_p50_ms": r(percentile(lat, 50)),
        "eos_to_audio_p95_ms": p95,
        "at_calls": target.calls if target else None,
        "baseline_p50_ms": r(percentile(base, 50)),
        "baseline_p95_ms": r(percentile(base, 95)),
        "first_call_max_ms": r(max(warmup.latencies(), default=None)) if warmup else None,
        "end_silence_ms": settings.end_silence_ms,
        "target_calls": settings.target_calls,
        "target_p95_ms": TARGET_P95_MS,
        "met": max_calls >= settings.target_calls and p95 is not None and p95 <= TARGET_P95_MS,
    }


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description="Concurrent Twilio calls against the hub.")
    parser.add_argument("--calls", default="1,2,4,6,8", help="steps of concurrent calls")
    parser.add_argument("--utterances", type=int, default=2, help="caller sentences per call")
    parser.add_argument("--end-silence-ms", type=int, default=600, help="hub endpoint silence")
    parser.add_argument("--stagger", type=float, default=6.0, help="call starts spread (s)")
    parser.add_argument("--reply-timeout", type=float, default=15.0, help="unanswered after (s)")
    parser.add_argument("--target-calls", type=int, default=TARGET_CALLS)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 and 2 calls")
    args = parser.parse_args(argv)
    try:
        steps = tuple(int(x) for x in ("1,2" if args.quick else args.calls).split(","))
    except ValueError:
        parser.error("--calls: comma-separated numbers, e.g. 1,2,4")
    if not steps or min(steps) < 1 or not 1 <= args.utterances <= 2:
        parser.error("--calls must be positive; --utterances 1 or 2 (the bot's misses)")
    return Settings(
        steps=steps,
        utterances=args.utterances,
        end_silence_ms=args.end_silence_ms,
        stagger=max(0.0, args.stagger),
        reply_timeout=args.reply_timeout,
        target_calls=args.target_calls,
    )


def run(settings: Settings, workdir: Path) -> int:
    load_at_start = os.getloadavg()[0]
    utterances = [prepare(text) for text in SENTENCES]
    flows = workdir / "phone.yaml"
    flows.write_text(FLOWS, encoding="utf-8")
    log("hub: starting `python -m hub serve` with channels.voice.twilio")
    started = time.monotonic()
    server = servers.start_hub(
        sys.executable,
        workdir,
        {
            "OMNIHUB_BOT_ENABLED": "1",
            "OMNIHUB_CHANNELS": json.dumps({"voice": {"twilio": {}}}),
            "OMNIHUB_PHONE_FLOWS": str(flows),
            "OMNIHUB_SPEECH_END_SILENCE_MS": str(settings.end_silence_ms),
        },
    )
    ready_s = time.monotonic() - started
    pid = server.process.pid if server.process else None
    steps: list[StepResult] = []
    warmup: StepResult | None = None
    failures: list[str] = []
    try:
        log("warm-up: one call")
        warmup = asyncio.run(run_step(server.base_url, pid, 1, utterances, settings))
        for n in settings.steps:
            log(f"step: {n} concurrent call(s)")
            step = asyncio.run(run_step(server.base_url, pid, n, utterances, settings))
            steps.append(step)
            failures += [
                f"{n} calls: call {i}: {r.error}" for i, r in enumerate(step.results) if r.error
            ]
            if not server.alive():
                failures.append("the hub exited during the benchmark")
                break
            if not step.ok(settings.end_silence_ms / 1000):
                log(f"{n} calls did not keep real time: stopping here")
                break
    finally:
        code = server.stop()
    if code not in (None, 0, -15):
        failures.append(f"the hub exited with code {code} on SIGTERM")
    if failures:
        failures.append(f"hub log tail:\n{server.log_tail()}")
    print_report(settings, steps, warmup, load_at_start, ready_s)
    for failure in failures:
        print(f"FAILURE: {failure}", file=sys.stderr)
    print(json.dumps(summary(settings, steps, warmup)), flush=True)
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_args(argv)
    return in_scratch_dir("omnihub-bench-phone-", lambda workdir: run(settings, workdir))


if __name__ == "__main__":
    sys.exit(main())
