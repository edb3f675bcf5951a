"""Call flows and inbound rules: what an admin writes (YAML or JSON) and its validated form.

An inbound rule picks a flow per dialled number and time window, as a call center's IVR
manual has it: a forced flow (an override, e.g. an emergency closure) first, then the holiday
flow on a holiday, the working-hours flow while open, the off-hours flow otherwise. A flow is
named steps; each step does one thing (play a prompt, a keypad/spoken menu, the bot, the
queue, voicemail, CSAT, hang up) and names the step that follows. Prompts are per language.

Every problem found at load names its line (hub.routing.sourcelines), and the structure is
checked before a call ever runs: unknown targets, steps no path reaches, and loops a call
could go round for ever without the caller doing anything. Pure: no I/O besides the caller
handing in the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.model import Priority
from hub.routing.hours import BusinessHours, HoursSpec
from hub.routing.sourcelines import ConfigFileError, SourceDocument, parse_source

_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_SKILL = re.compile(r"^[A-Za-z0-9_.-]{1,64}(:[1-5])?$")
_NUMBER = re.compile(r"^(\*|\+?[0-9A-Za-z@._:-]{1,64})$")
MAX_STEPS = 200
Seconds = Annotated[float, Field(gt=0, le=3600)]

# A prompt: one text for every language, a text per language ({en: ..., zh: ...}), or a
# list of parts each said in its own language ([{en: "For English press 1."}, {zh: "..."}]:
# the language menu, before the caller has chosen).
Text = str | dict[str, str] | list[dict[str, str]]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MenuOption(_Spec):
    """One choice of a menu: a key, and/or words the caller may say instead, per language."""

    digit: str | None = Field(None, pattern=r"^[0-9*#]$")
    words: dict[str, list[str]] = {}
    language: str | None = None  # choosing this option switches the call's language
    goto: str

    @model_validator(mode="after")
    def _reachable(self) -> MenuOption:
        if self.digit is None and not self.words:
            raise ValueError("an option needs a digit or words to say")
        return self


class AgentShortcut(_Spec):
    """ "Press 0 or say agent" at any step that listens: straight to `goto` (a queue step)."""

    digit: str | None = Field("0", pattern=r"^[0-9*#]$")
    words: dict[str, list[str]] = {}
    goto: str


class SayStep(_Spec):
    type: Literal["say"]
    say: Text
    goto: str


class MenuStep(_Spec):
    type: Literal["menu"]
    say: Text
    options: list[MenuOption] = Field(min_length=1, max_length=12)
    timeout_s: Seconds = 6.0  # silence after the prompt before "no input"
    retries: int = Field(2, ge=0, le=5)  # prompts again after no input / no match
    no_input: Text | None = None
    no_match: Text | None = None
    on_failure: str  # after the last retry


class BotStep(_Spec):
    type: Literal["bot"]
    say: Text
    handoff: str  # where the call goes when the bot hands the conversation to people
    silence_s: Seconds = 20.0  # the caller says nothing this long after the bot spoke...
    on_silence: str  # ...then this step (CSAT, goodbye)


class QueueStep(_Spec):
    type: Literal["queue"]
    say: Text
    skills: list[str] = []  # "billing" or "billing:3"
    priority: Priority | None = None
    # {position} and {minutes} are filled in; said on entry and every `announce_every_s`.
    announce: Text | None = None
    announce_every_s: Seconds = 60.0
    average_handle_s: Seconds = 180.0  # for the expected wait
    max_wait_s: Seconds = 600.0
    on_timeout: str  # no agent took the call in max_wait_s (voicemail, callback)
    on_overflow: str | None = None  # the router overflowed it (default: on_timeout)
    after_agent: str | None = None  # when the agent resolves the conversation (CSAT)

    @field_validator("skills")
    @classmethod
    def _skill_syntax(cls, value: list[str]) -> list[str]:
        for skill in value:
            if not _SKILL.match(skill):
                raise ValueError(f"{skill!r} is not a skill name or name:level (level 1-5)")
        return value


class VoicemailStep(_Spec):
    type: Literal["voicemail"]
    say: Text
    max_s: Seconds = 120.0
    end_digit: str | None = Field("#", pattern=r"^[0-9*#]$")  # ends the recording early
    callback: bool = True  # ask for a call back on the caller's number
    goto: str


class CsatStep(_Spec):
    type: Literal["csat"]
    say: Text
    thanks: Text | None = None
    timeout_s: Seconds = 8.0
    goto: str


class HangupStep(_Spec):
    type: Literal["hangup"]
    say: Text | None = None


Step = Annotated[
    SayStep | MenuStep | BotStep | QueueStep | VoicemailStep | CsatStep | HangupStep,
    Field(discriminator="type"),
]


class FlowSpec(_Spec):
    start: str
    agent: AgentShortcut | None = None
    steps: dict[str, Step] = Field(min_length=1, max_length=MAX_STEPS)


class RuleSpec(_Spec):
    """Which flow a call to `numbers` takes, by time window; `force` overrides them all."""

    name: str = Field(min_length=1, max_length=100)
    numbers: list[str] = Field(min_length=1)  # dialled numbers; "*" matches any
    inbox: str = Field("phone", min_length=1, max_length=100)
    hours: HoursSpec | None = None  # None: always open
    open: str  # the working-hours flow
    closed: str | None = None  # off hours (default: open)
    holiday: str | None = None  # on a holiday (default: closed)
    force: str | None = None  # a forced flow for every call, whatever the time

    @field_validator("numbers")
    @classmethod
    def _number_syntax(cls, value: list[str]) -> list[str]:
        for number in value:
            if not _NUMBER.match(number):
                raise ValueError(f"{number!r} is not a dialled number, address or *")
        return value


class PhoneSpec(_Spec):
    languages: list[str] = Field(min_length=1)  # the first is the default
    rules: list[RuleSpec] = Field(min_length=1)
    flows: dict[str, FlowSpec] = Field(min_length=1)

    @field_validator("languages")
    @classmethod
    def _language_syntax(cls, value: list[str]) -> list[str]:
        for lang in value:
            if not _LANGUAGE.match(lang):
                raise ValueError(f"{lang!r} is not a language tag (en, zh, zh-CN)")
        return value


# --- the validated form --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Picked:
    """Which flow a call takes and why (logged with the call)."""

    rule: str
    flow: str
    window: Literal["forced", "holiday", "open", "closed"]
    inbox: str


@dataclass(frozen=True, slots=True)
class Rule:
    spec: RuleSpec
    hours: BusinessHours | None

    def window(self, at: float) -> Literal["forced", "holiday", "open", "closed"]:
        if self.spec.force is not None:
            return "forced"
        if self.hours is None:
            return "open"
        local = datetime.fromtimestamp(at, UTC).astimezone(self.hours.zone)
        if local.date() in self.hours.holidays:
            return "holiday"
        return "open" if self.hours.is_open(at) else "closed"

    def flow(self, window: str) -> str:
        s = self.spec
        if window == "forced" and s.force is not None:
            return s.force
        if window == "holiday":
            return s.holiday or s.closed or s.open
        if window == "closed":
            return s.closed or s.open
        return s.open


@dataclass(frozen=True, slots=True)
class PhoneConfig:
    """Validated flows and rules; `choose` picks the flow for a call."""

    languages: tuple[str, ...]
    rules: tuple[Rule, ...]
    flows: Mapping[str, FlowSpec]
    source: str

    @property
    def default_language(self) -> str:
        return self.languages[0]

    def choose(self, dialled: str, at: float) -> Picked | None:
        """The rule and flow for a call to `dialled` at epoch second `at`; None when no rule
        takes the number."""
        number = normal_number(dialled)
        for rule in self.rules:
            if any(n == "*" or normal_number(n) == number for n in rule.spec.numbers):
                window = rule.window(at)
                return Picked(rule.spec.name, rule.flow(window), window, rule.spec.inbox)
        return None

    def utterances(self, text: Text | None, language: str) -> list[tuple[str, str]]:
        """A prompt as (language, words) parts: in `language`, else in the default one."""
        if text is None:
            return []
        if isinstance(text, str):
            return [(language, text)] if text else []
        if isinstance(text, list):
            return [(lang, words) for part in text for lang, words in part.items() if words]
        for lang in (language, self.default_language):
            if text.get(lang):
                return [(lang, text[lang])]
        return [next(iter(text.items()))] if text else []


def normal_number(number: str) -> str:
    """A dialled number compared without spaces, dashes and a `tel:`/`sip:` prefix."""
    n = number.strip().lower()
    for prefix in ("tel:", "sip:"):
        n = n.removeprefix(prefix)
    n = n.split("@", 1)[0] if n[:1] in "+0123456789" else n
    return re.sub(r"[\s().-]", "", n)


def load_phone_config(text: str, source: str = "phone flows") -> PhoneConfig:
    """Parse and validate; ConfigFileError lists every problem with its line."""
    doc = parse_source(text, source)
    if not isinstance(doc.data, dict):
        raise ConfigFileError([doc.problem((), "expected a mapping with languages, rules, flows")])
    spec = doc.validated(PhoneSpec)
    problems = _cross_check(spec, doc)
    if problems:
        raise ConfigFileError(problems)
    rules = tuple(
        Rule(r, BusinessHours.from_spec(r.hours) if r.hours is not None else None)
        for r in spec.rules
    )
    return PhoneConfig(tuple(spec.languages), rules, dict(spec.flows), source)


# --- cross checks ------------------------------------------------------------------------------

_Path = tuple[str | int, ...]


def edges(step: BaseModel) -> Iterator[tuple[str, str, bool]]:
    """(field, target, waits for the caller) for every step a step can go to. An edge taken
    only after the caller did something (a key, words, being served) is `True`; one the call
    takes on its own (a prompt ended, a timeout) is `False`."""
    if isinstance(step, SayStep):
        yield "goto", step.goto, False
    elif isinstance(step, MenuStep):
        for i, option in enumerate(step.options):
            yield f"options.{i}.goto", option.goto, True
        yield "on_failure", step.on_failure, False
    elif isinstance(step, BotStep):
        yield "handoff", step.handoff, True
        yield "on_silence", step.on_silence, False
    elif isinstance(step, QueueStep):
        yield "on_timeout", step.on_timeout, False
        if step.on_overflow is not None:
            yield "on_overflow", step.on_overflow, False
        if step.after_agent is not None:
            yield "after_agent", step.after_agent, True
    elif isinstance(step, VoicemailStep | CsatStep):
        yield "goto", step.goto, False


def _cross_check(spec: PhoneSpec, doc: SourceDocument) -> list[str]:
    problems: list[str] = []
    languages = set(spec.languages)

    def check_text(path: _Path, text: Text | None) -> None:
        if isinstance(text, list):
            for i, part in enumerate(text):
                if len(part) != 1:
                    problems.append(doc.problem((*path, i), "each part is one {language: text}"))
                for lang in part:
                    if lang not in languages:
                        problems.append(
                            doc.problem(
                                (*path, i, lang), f"language {lang!r} is not in `languages`"
                            )
                        )
        elif isinstance(text, dict):
            for lang in text:
                if lang not in languages:
                    problems.append(
                        doc.problem((*path, lang), f"language {lang!r} is not in `languages`")
                    )
            if spec.languages[0] not in text:
                problems.append(
                    doc.problem(path, f"needs a text in the default language {spec.languages[0]!r}")
                )

    def check_words(path: _Path, words: dict[str, list[str]]) -> None:
        for lang in words:
            if lang not in languages:
                problems.append(
                    doc.problem((*path, lang), f"language {lang!r} is not in `languages`")
                )

    for i, rule in enumerate(spec.rules):
        for key in ("open", "closed", "holiday", "force"):
            name = getattr(rule, key)
            if name is not None and name not in spec.flows:
                problems.append(doc.problem(("rules", i, key), f"no flow named {name!r}"))

    for flow_name, flow in spec.flows.items():
        base: _Path = ("flows", flow_name)
        steps = flow.steps
        if flow.start not in steps:
            problems.append(doc.problem((*base, "start"), f"no step named {flow.start!r}"))
        if flow.agent is not None:
            check_words((*base, "agent", "words"), flow.agent.words)
            if flow.agent.goto not in steps:
                problems.append(
                    doc.problem((*base, "agent", "goto"), f"no step named {flow.agent.goto!r}")
                )
        for name, step in steps.items():
            here = (*base, "steps", name)
            for key in ("say", "no_input", "no_match", "announce", "thanks"):
                check_text((*here, key), getattr(step, key, None))
            if isinstance(step, MenuStep):
                digits = [o.digit for o in step.options if o.digit is not None]
                for j, option in enumerate(step.options):
                    check_words((*here, "options", j, "words"), option.words)
                    if option.language is not None and option.language not in languages:
                        problems.append(
                            doc.problem(
                                (*here, "options", j, "language"),
                                f"language {option.language!r} is not in `languages`",
                            )
                        )
                    if option.digit is not None and digits.count(option.digit) > 1:
                        problems.append(
                            doc.problem(
                                (*here, "options", j, "digit"),
                                f"digit {option.digit!r} is used twice",
                            )
                        )
            for key, target, _waits in edges(step):
                if target not in steps:
                    problems.append(doc.problem((*here, *key.split(".")), _unknown(target)))
        if problems:
            continue  # reachability and loops need every target to exist
        problems.extend(_unreachable(flow, base, doc))
        problems.extend(_idle_loops(flow, base, doc))
    return problems


def _unknown(target: str) -> str:
    return f"no step named {target!r}"


def _unreachable(flow: FlowSpec, base: _Path, doc: SourceDocument) -> list[str]:
    seen = {flow.start}
    todo = [flow.start]
    if flow.agent is not None:
        seen.add(flow.agent.goto)
        todo.append(flow.agent.goto)
    while todo:
        for _key, target, _waits in edges(flow.steps[todo.pop()]):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return [
        doc.problem((*base, "steps", name), f"step {name!r} is never reached")
        for name in flow.steps
        if name not in seen
    ]


def _idle_loops(flow: FlowSpec, base: _Path, doc: SourceDocument) -> list[str]:
    """Cycles made only of edges taken without the caller: the call would go round for
    ever (each reported once, at its first step in file order)."""
    idle = {
        name: [t for _k, t, waits in edges(step) if not waits] for name, step in flow.steps.items()
    }
    problems = []
    reported: set[str] = set()
    for start in flow.steps:
        # depth-first search for a path of idle edges back to `start`
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        visited: set[str] = set()
        while stack:
            name, path = stack.pop()
            for target in idle[name]:
                if target == start:
                    if not reported & set(path):
                        chain = " -> ".join([*path, start])
                        problems.append(
                            doc.problem(
                                (*base, "steps", start),
                                f"loop that takes no caller input: {chain}",
                            )
                        )
                        reported.update(path)
                    stack.clear()
                    break
                if target not in visited:
                    visited.add(target)
                    stack.append((target, [*path, target]))
    return problems
