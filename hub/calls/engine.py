"""The call flow engine: pure, clock-driven, no I/O. Feed it events, act on its actions.

One engine runs one call through one flow (`hub.calls.flows`). The call controller turns
what happens on the line (keys, voice activity, final transcripts, a prompt played out, an
outbound message to speak, the router's news) into events, and carries out the actions the
engine returns, in order: say a prompt, stop playback (barge-in), listen with a grammar,
send the caller's words on as a message, queue for agents, announce the queue position,
record a voicemail, record a CSAT rating, hang up, and log every step for the event log.

Time moves only through the injected clock: call `on(Tick())` once `next_deadline()` has
passed (no-input timeouts, queue announcements, the longest wait, the voicemail's length).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.calls.flows import (
    BotStep,
    CsatStep,
    FlowSpec,
    HangupStep,
    MenuStep,
    PhoneConfig,
    QueueStep,
    SayStep,
    Text,
    VoicemailStep,
)

Clock = Callable[[], float]
MAX_HOPS = 32  # steps entered on one event: more is a loop in the flow (checked at load too)
MAX_STEPS_PER_CALL = 500  # a call that wanders this long is ended, not left running
RESOLVED_GRACE_S = 60.0  # the call stays up this long after the agent resolved it

# --- events (what happened on the line) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digit:
    digit: str


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The recogniser noticed the caller speaking (voice activity): barge-in."""


@dataclass(frozen=True, slots=True)
class HeardText:
    """A final transcript of one utterance ("" when nothing was recognised)."""

    text: str


@dataclass(frozen=True, slots=True)
class PromptDone:
    """Playback of the `Say` with this `seq` ended (`completed` False: cut or call over)."""

    seq: int
    completed: bool = True


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: timers due by now fire."""


@dataclass(frozen=True, slots=True)
class Delivered:
    """An outbound message to speak (bot answer, agent reply, CSAT question) with its
    choices as (title, payload): read out as a keypad menu."""

    text: str
    choices: tuple[tuple[str, str], ...] = ()
    language: str | None = None
    speaker: str | None = None  # "bot" or "agent" (who wrote it); None: by the call's state


@dataclass(frozen=True, slots=True)
class HandedOff:
    """The conversation went to the queue without the flow asking (the bot handed off)."""


@dataclass(frozen=True, slots=True)
class InQueue:
    """The router has the call waiting in a queue: its place can be told from now on."""


@dataclass(frozen=True, slots=True)
class AgentJoined:
    agent_id: int | None


@dataclass(frozen=True, slots=True)
class Resolved:
    """A person resolved the conversation."""


@dataclass(frozen=True, slots=True)
class Overflowed:
    """The router gave up on the queue (after its last step): voicemail, callback..."""

    action: str


@dataclass(frozen=True, slots=True)
class CallerGone:
    """The call ended (`by`: caller, hub or error)."""

    by: str
    reason: str = ""


Event = (
    Digit
    | SpeechStarted
    | HeardText
    | PromptDone
    | Tick
    | Delivered
    | HandedOff
    | InQueue
    | AgentJoined
    | Resolved
    | Overflowed
    | CallerGone
)

# --- actions (what the controller does) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    seq: int
    language: str
    text: str
    barge_in: bool = True
    speaker: str = "hub"  # "hub" (a prompt), "bot" or "agent" (a delivered message)


@dataclass(frozen=True, slots=True)
class StopPlayback:
    pass


@dataclass(frozen=True, slots=True)
class SetLanguage:
    language: str


@dataclass(frozen=True, slots=True)
class Listen:
    """(Re)start recognition in `language`; with `grammar` only those phrases."""

    language: str
    grammar: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SendText:
    """The caller's words (or a choice's payload) as a customer message."""

    text: str


@dataclass(frozen=True, slots=True)
class Enqueue:
    skills: tuple[str, ...]
    priority: str | None
    language: str
    reason: str  # "caller_request" (press 0), "menu", "bot" ...


@dataclass(frozen=True, slots=True)
class AnnounceQueue:
    """Say the caller's place in the queue: `template` with {position} and {minutes}."""

    seq: int
    language: str
    template: str
    average_handle_s: float


@dataclass(frozen=True, slots=True)
class StartRecording:
    pass


@dataclass(frozen=True, slots=True)
class StopRecording:
    callback: bool  # ask for a call back on the caller's number


@dataclass(frozen=True, slots=True)
class RecordCsat:
    score: int


@dataclass(frozen=True, slots=True)
class HangUp:
    reason: str


@dataclass(frozen=True, slots=True)
class LogStep:
    """One line of the call's event log (CALL_STEP)."""

    step: str
    data: dict[str, Any] = field(default_factory=dict)


Action = (
    Say
    | StopPlayback
    | SetLanguage
    | Listen
    | SendText
    | Enqueue
    | AnnounceQueue
    | StartRecording
    | StopRecording
    | RecordCsat
    | HangUp
    | LogStep
)

# Read-out of a message's choices as a keypad menu, per language.
_PRESS = {"en": "Press {digit} for {title}.", "zh": "{title}请按 {digit}。"}
# Ratings and menu digits said as words.
_SPOKEN_DIGITS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "一": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
}  # fmt: skip
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


def normal(text: str) -> str:
    """Words compared case-, width- and punctuation-blind ("Agent!" = "agent")."""
    return _PUNCT.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _says(words: str, phrase: str) -> bool:
    """Whether the utterance contains the phrase (as words; Chinese has no spaces)."""
    w, p = normal(words), normal(phrase)
    if not p:
        return False
    if any("\u3000" <= ch <= "\u9fff" for ch in p):
        return p.replace(" ", "") in w.replace(" ", "")
    return f" {p} " in f" {w} "


class FlowEngine:
    """One call's way through its flow (see the module doc)."""

    def __init__(
        self,
        config: PhoneConfig,
        flow_name: str,
        clock: Clock,
        language: str | None = None,
    ):
        self.config = config
        self.flow_name = flow_name
        self.flow: FlowSpec = config.flows[flow_name]
        self.clock = clock
        self.language = language if language in config.languages else config.default_language
        self.step_name = ""
        self.ended = False
        self.queued = False  # handed to the router (by the flow or the bot)
        self.agent_id: int | None = None
        self.path: list[str] = []  # every step entered, in order
        self.choices_made: list[dict[str, Any]] = []
        self.csat: int | None = None
        self._seq = 0
        self._speaking_seq: int | None = None  # the last Say not yet played out
        self._barge_in = True
        self._timers: dict[str, float] = {}
        self._retries = 0
        self._recording = False
        self._offered: list[tuple[str, str]] = []  # a delivered message's choices
        self._out: list[Action] = []
        self._hops = 0
        self._rated = False
        self._waiting = False  # the router said the call waits in a queue

    # --- reading --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return min(self._timers.values()) if self._timers and not self.ended else None

    @property
    def step(self) -> Any:
        return self.flow.steps[self.step_name]

    def summary(self) -> dict[str, Any]:
        """What the call did, for CALL_ENDED."""
        return {
            "flow": self.flow_name,
            "language": self.language,
            "steps": list(self.path),
            "choices": list(self.choices_made),
            "queued": self.queued,
            "agent_id": self.agent_id,
            "csat": self.csat,
        }

    # --- driving --------------------------------------------------------------------------

    def start(self) -> list[Action]:
        """The call was answered: enter the flow's first step."""
        return self._run(lambda: self._enter(self.flow.start))

    def on(self, event: Event) -> list[Action]:
        """Feed one event; the actions to carry out, in order."""
        if self.ended:
            return []
        return self._run(lambda: self._dispatch(event))

    def _run(self, fn: Callable[[], None]) -> list[Action]:
        self._out, self._hops = [], 0
        try:
            fn()
        except _Loop as loop:
            self._timers.clear()
            self._out.append(LogStep("error", {"error": str(loop)}))
            self._end("flow_error")
        out, self._out = self._out, []
        return out

    def _dispatch(self, event: Event) -> None:
        match event:
            case Digit(digit):
                self._barge()
                self._on_digit(digit)
            case SpeechStarted():
                self._barge()
            case HeardText(text):
                self._on_heard(text)
            case PromptDone(seq):
                if self._speaking_seq is not None and seq >= self._speaking_seq:
                    self._speaking_seq = None
                    self._prompts_over()
            case Tick():
                self._on_tick()
            case Delivered():
                self._on_delivered(event)
            case HandedOff():
                self.queued = True
                if isinstance(self.step, BotStep):
                    self._out.append(LogStep("bot_handoff", {}))
                    self._goto(self.step.handoff)
            case InQueue():
                first = not self._waiting
                self._waiting = True
                if first and isinstance(self.step, QueueStep):
                    self._announce()
            case AgentJoined(agent_id):
                self._on_agent(agent_id)
            case Resolved():
                if isinstance(self.step, QueueStep) and self.agent_id is not None:
                    self._out.append(LogStep("agent_resolved", {"agent_id": self.agent_id}))
                    if self.step.after_agent is not None:
                        self._goto(self.step.after_agent)
                    else:
                        # The inbox's own CSAT question (the bot's, read out with its keys)
                        # may follow; then the call ends if the caller has not hung up.
                        self._timers["resolved"] = self.clock() + RESOLVED_GRACE_S
            case Overflowed(action):
                if isinstance(self.step, QueueStep) and self.agent_id is None:
                    self._out.append(LogStep("overflow", {"action": action}))
                    self._goto(self.step.on_overflow or self.step.on_timeout)
            case CallerGone(by, reason):
                if self._recording:
                    self._stop_recording()
                self._out.append(LogStep("hang_up", {"by": by, "reason": reason}))
                self._timers.clear()
                self.ended = True

    # --- steps ----------------------------------------------------------------------------

    def _goto(self, name: str) -> None:
        self._enter(name)

    def _enter(self, name: str) -> None:
        self._hops += 1
        if self._hops > MAX_HOPS or len(self.path) >= MAX_STEPS_PER_CALL:
            raise _Loop(f"flow {self.flow_name!r} loops at step {name!r}")
        if self._recording:
            self._stop_recording()
        self.step_name = name
        self.path.append(name)
        self._timers.clear()
        self._retries = 0
        self._offered = []
        step = self.step
        self._out.append(LogStep("step", {"name": name, "type": step.type}))
        if isinstance(step, MenuStep):
            self._out.append(Listen(self.language, self._grammar(step)))
            self._say(step.say)
        elif isinstance(step, BotStep):
            self._out.append(Listen(self.language))
            self._say(step.say)
        elif isinstance(step, QueueStep):
            self._out.append(Listen(self.language))
            self._say(step.say)
            if not self.queued:
                self.queued = True
                self._out.append(Enqueue(tuple(step.skills), step.priority, self.language, "flow"))
            if self._waiting:
                self._announce()  # the bot had queued it: the router has it already
            self._timers["max_wait"] = self.clock() + step.max_wait_s
        elif isinstance(step, VoicemailStep):
            self._out.append(Listen(self.language))  # free speech: the transcript
            self._say(step.say, barge_in=False)
        elif isinstance(step, CsatStep):
            self._out.append(Listen(self.language, tuple(_digit_words(self.language))))
            self._say(step.say)
        elif isinstance(step, SayStep):
            self._say(step.say, barge_in=False)
        elif isinstance(step, HangupStep):
            self._say(step.say, barge_in=False)
        if self._speaking_seq is None:
            self._prompts_over()  # nothing to say: go on at once

    def _prompts_over(self) -> None:
        """Everything queued to say was played (or cut): the step goes on."""
        step, now = self.step, self.clock()
        if isinstance(step, MenuStep):
            self._timers["input"] = now + step.timeout_s
        elif isinstance(step, BotStep):
            self._timers["silence"] = now + step.silence_s
        elif isinstance(step, CsatStep):
            if self._rated:
                self._goto(step.goto)
            else:
                self._timers["input"] = now + step.timeout_s
        elif isinstance(step, VoicemailStep):
            if not self._recording:
                self._recording = True
                self._out.append(StartRecording())
                self._timers["record"] = now + step.max_s
        elif isinstance(step, SayStep):
            self._goto(step.goto)
        elif isinstance(step, HangupStep):
            self._end("flow_end")

    def _on_tick(self) -> None:
        now = self.clock()
        due = sorted((at, kind) for kind, at in self._timers.items() if at <= now)
        for _at, kind in due:
            if self.ended or kind not in self._timers:
                continue
            del self._timers[kind]
            step = self.step
            if kind == "input" and isinstance(step, MenuStep):
                self._retry(step, "no_input")
            elif kind == "input" and isinstance(step, CsatStep):
                self._out.append(LogStep("csat", {"score": None}))
                self._goto(step.goto)
            elif kind == "silence" and isinstance(step, BotStep):
                self._out.append(LogStep("bot_silence", {}))
                self._goto(step.on_silence)
            elif kind == "announce" and isinstance(step, QueueStep):
                self._announce()
            elif kind == "max_wait" and isinstance(step, QueueStep):
                self._out.append(LogStep("queue_timeout", {"waited_s": step.max_wait_s}))
                self._goto(step.on_timeout)
            elif kind == "resolved":
                self._end("resolved")
            elif kind == "record" and isinstance(step, VoicemailStep):
                self._stop_recording()
                self._goto(step.goto)

    def _on_digit(self, digit: str) -> None:
        step = self.step
        if isinstance(step, MenuStep):
            for i, option in enumerate(step.options):
                if option.digit == digit:
                    return self._pick(step, i, "digit", digit)
            if self._agent_shortcut(digit=digit):
                return None
            return self._retry(step, "no_match", digit=digit)
        if isinstance(step, CsatStep):
            return self._rate(step, digit)
        if isinstance(step, VoicemailStep):
            if self._recording and digit == step.end_digit:
                self._stop_recording()
                self._goto(step.goto)
            return None
        if isinstance(step, BotStep | QueueStep):
            if self._offered and digit.isdigit() and 1 <= int(digit) <= len(self._offered):
                title, payload = self._offered[int(digit) - 1]
                self._offered = []
                self._out.append(LogStep("choice", {"digit": digit, "title": title}))
                self.choices_made.append({"step": self.step_name, "digit": digit, "title": title})
                self._out.append(SendText(payload))
                self._restart_silence()
                return None
            if isinstance(step, BotStep):
                self._agent_shortcut(digit=digit)
        return None

    def _on_heard(self, text: str) -> None:
        step = self.step
        if isinstance(step, MenuStep):
            if not text.strip():
                return self._retry(step, "no_match", heard="")
            for i, option in enumerate(step.options):
                words = option.words.get(self.language, []) + [
                    w for lang, ws in option.words.items() if lang != self.language for w in ws
                ]
                if any(_says(text, w) for w in words) or (
                    option.digit is not None and _spoken_digit(text) == option.digit
                ):
                    return self._pick(step, i, "speech", text)
            if self._agent_shortcut(words=text):
                return None
            return self._retry(step, "no_match", heard=text)
        if isinstance(step, CsatStep):
            digit = _spoken_digit(text)
            if digit is not None:
                self._rate(step, digit)
            return None
        if isinstance(step, BotStep | QueueStep):
            if not text.strip():
                return None
            if isinstance(step, BotStep) and self._agent_shortcut(words=text):
                return None
            for title, payload in self._offered:
                if normal(text) in (normal(title), normal(payload)):
                    self._offered = []
                    self.choices_made.append({"step": self.step_name, "said": text})
                    self._out.append(LogStep("choice", {"said": text, "title": title}))
                    self._out.append(SendText(payload))
                    self._restart_silence()
                    return None
            self._out.append(SendText(text))
            self._restart_silence()
        return None

    def _on_delivered(self, event: Delivered) -> None:
        language = event.language if event.language in self.config.languages else self.language
        speaker = event.speaker or ("agent" if self.agent_id is not None else "bot")
        self._say_parts([(language, event.text)], speaker=speaker)
        self._offered = list(event.choices)
        if event.choices:
            press = _PRESS.get(language, _PRESS["en"])
            menu = " ".join(
                press.format(digit=i, title=title) for i, (title, _p) in enumerate(event.choices, 1)
            )
            self._say_parts([(language, menu)], speaker=speaker)
        self._timers.pop("silence", None)  # the silence counts from when the caller heard it

    def _on_agent(self, agent_id: int | None) -> None:
        self.agent_id = agent_id
        self.queued = True
        self._out.append(LogStep("agent_joined", {"agent_id": agent_id}))
        if isinstance(self.step, QueueStep):
            self._timers.pop("announce", None)
            self._timers.pop("max_wait", None)

    # --- helpers --------------------------------------------------------------------------

    def _pick(self, step: MenuStep, index: int, how: str, value: str) -> None:
        option = step.options[index]
        self.choices_made.append({"step": self.step_name, how: value, "option": index + 1})
        self._out.append(
            LogStep("menu_choice", {"menu": self.step_name, how: value, "option": index + 1})
        )
        if option.language is not None and option.language != self.language:
            self.language = option.language
            self._out.append(SetLanguage(option.language))
        self._goto(option.goto)

    def _retry(self, step: MenuStep, why: str, **data: str) -> None:
        self._out.append(
            LogStep(why, {"menu": self.step_name, "attempt": self._retries + 1, **data})
        )
        self._timers.pop("input", None)
        if self._retries >= step.retries:
            self._goto(step.on_failure)
            return
        self._retries += 1
        self._say(step.no_input if why == "no_input" else step.no_match)
        self._say(step.say)

    def _rate(self, step: CsatStep, digit: str) -> None:
        if self._rated or digit not in "12345" or len(digit) != 1:
            return
        self._rated = True
        self.csat = int(digit)
        self._timers.pop("input", None)
        self._out.append(LogStep("csat", {"score": self.csat}))
        self._out.append(RecordCsat(self.csat))
        self._say(step.thanks)
        if self._speaking_seq is None:
            self._goto(step.goto)

    def _agent_shortcut(self, digit: str | None = None, words: str | None = None) -> bool:
        agent = self.flow.agent
        if agent is None or self.queued or self.step_name == agent.goto:
            return False
        hit = digit is not None and digit == agent.digit
        if words is not None:
            hit = any(_says(words, w) for ws in agent.words.values() for w in ws)
        if hit:
            self._out.append(
                LogStep("agent_request", {"digit": digit} if digit else {"said": words})
            )
            self._goto(agent.goto)
        return hit

    def _announce(self) -> None:
        step = self.step
        if not isinstance(step, QueueStep) or step.announce is None or self.agent_id is not None:
            return
        for language, template in self.config.utterances(step.announce, self.language):
            self._seq += 1
            self._speaking_seq = self._seq
            self._out.append(AnnounceQueue(self._seq, language, template, step.average_handle_s))
        self._timers["announce"] = self.clock() + step.announce_every_s

    def _restart_silence(self) -> None:
        if isinstance(self.step, BotStep):
            self._timers["silence"] = self.clock() + self.step.silence_s

    def _barge(self) -> None:
        if self._speaking_seq is not None and self._barge_in:
            self._speaking_seq = None
            self._out.append(StopPlayback())
            self._prompts_over()

    def _say(self, text: Text | None, *, barge_in: bool = True) -> None:
        self._say_parts(self.config.utterances(text, self.language), barge_in=barge_in)

    def _say_parts(
        self, parts: Sequence[tuple[str, str]], *, barge_in: bool = True, speaker: str = "hub"
    ) -> None:
        for language, words in parts:
            self._seq += 1
            self._speaking_seq = self._seq
            self._barge_in = barge_in
            self._out.append(Say(self._seq, language, words, barge_in, speaker))

    def _stop_recording(self) -> None:
        self._recording = False
        self._timers.pop("record", None)
        step = self.step
        callback = isinstance(step, VoicemailStep) and step.callback
        self._out.append(LogStep("voicemail", {"callback": callback}))
        self._out.append(StopRecording(callback))

    def _end(self, reason: str) -> None:
        self._timers.clear()
        self.ended = True
        self._out.append(HangUp(reason))

    def _grammar(self, step: MenuStep) -> tuple[str, ...]:
        words: list[str] = []
        for option in step.options:
            words += option.words.get(self.language, [])
        if self.flow.agent is not None:
            words += self.flow.agent.words.get(self.language, [])
        return tuple(dict.fromkeys(words + _digit_words(self.language)))


class _Loop(Exception):
    pass


def _digit_words(language: str) -> list[str]:
    if language.startswith("zh"):
        return ["一", "二", "三", "四", "五"]
    return ["one", "two", "three", "four", "five"]


def _spoken_digit(text: str) -> str | None:
    said = normal(text)
    if any("\u3000" <= c <= "\u9fff" for c in said):
        said = said.replace(" ", "")
    if said.isdigit() and len(said) == 1:
        return said
    return _SPOKEN_DIGITS.get(said)
