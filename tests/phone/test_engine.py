"""The pure flow engine, driven by scripted events and a fake clock (no audio, no I/O)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.calls.engine import (
    Action,
    AgentJoined,
    AnnounceQueue,
    CallerGone,
    Delivered,
    Digit,
    Enqueue,
    Event,
    FlowEngine,
    HandedOff,
    HangUp,
    HeardText,
    InQueue,
    Listen,
    LogStep,
    Overflowed,
    PromptDone,
    RecordCsat,
    Resolved,
    Say,
    SendText,
    SetLanguage,
    SpeechStarted,
    StartRecording,
    StopPlayback,
    StopRecording,
    Tick,
)
from hub.calls.flows import load_phone_config
from hub.routing import ManualClock

DEMO = Path(__file__).resolve().parents[2] / "hub" / "demo" / "phone.yaml"


class Call:
    """One engine and everything it did; `played()` plays out what it queued to say."""

    def __init__(self, flow: str = "main", language: str | None = None, text: str | None = None):
        self.clock = ManualClock()
        config = load_phone_config(text or DEMO.read_text(encoding="utf-8"), "phone.yaml")
        self.engine = FlowEngine(config, flow, self.clock, language)
        self.actions: list[Action] = []
        self.last: list[Action] = self._take(self.engine.start())

    def _take(self, actions: list[Action]) -> list[Action]:
        self.actions += actions
        self.last = actions
        return actions

    def on(self, event: Event) -> list[Action]:
        return self._take(self.engine.on(event))

    def played(self) -> list[Action]:
        """Every prompt queued so far was played to its end."""
        said = [a.seq for a in self.actions if isinstance(a, Say | AnnounceQueue)]
        return self.on(PromptDone(max(said))) if said else []

    def wait(self, seconds: float) -> list[Action]:
        self.clock.advance(seconds)
        return self.on(Tick())

    def said(self, actions: list[Action] | None = None) -> list[str]:
        return [a.text for a in (self.last if actions is None else actions) if isinstance(a, Say)]

    def steps(self) -> list[dict[str, Any]]:
        return [{"step": a.step, **a.data} for a in self.actions if isinstance(a, LogStep)]

    def choose_english(self) -> None:
        self.played()
        self.on(Digit("1"))


def test_language_choice_by_key_switches_the_prompts() -> None:
    call = Call()
    assert call.said() == ["Welcome to the Demo Shop. For English, press 1.", "中文服务请按 2。"]
    languages = [a.language for a in call.last if isinstance(a, Say)]
    assert languages == ["en", "zh"]  # each part in its own voice
    listen = next(a for a in call.last if isinstance(a, Listen))
    assert "english" in listen.grammar and "agent" in listen.grammar
    call.played()
    out = call.on(Digit("2"))
    assert SetLanguage("zh") in out
    assert call.said(out) == ["请在提示音后说出您的问题。按 0 或说“人工”转接客服。"]
    assert Listen("zh") in out
    assert call.steps()[:3] == [
        {"step": "step", "name": "language", "type": "menu"},
        {"step": "menu_choice", "menu": "language", "digit": "2", "option": 2},
        {"step": "step", "name": "ask", "type": "bot"},
    ]
    assert call.engine.summary()["language"] == "zh"


def test_language_choice_by_word() -> None:
    call = Call()
    call.played()
    out = call.on(HeardText("English please"))
    assert call.engine.step_name == "ask"
    assert not any(isinstance(a, SetLanguage) for a in out)  # English already
    assert call.engine.choices_made == [
        {"step": "language", "speech": "English please", "option": 1}
    ]


def test_no_input_and_no_match_retry_then_fall_through() -> None:
    call = Call()
    call.played()
    out = call.wait(5.9)
    assert out == []  # not yet
    out = call.wait(0.2)  # 6 s of silence after the prompt
    assert call.said(out)[0] == "For English, press 1."
    call.played()
    out = call.on(Digit("7"))  # no such option
    assert call.said(out)[0] == "Sorry. For English, press 1."
    call.played()
    out = call.wait(6.1)  # third failure: the menu gives up and goes on
    assert call.engine.step_name == "ask"
    kinds = [s["step"] for s in call.steps()]
    assert kinds.count("no_input") == 2 and kinds.count("no_match") == 1


def test_barge_in_stops_the_prompt_and_the_key_counts() -> None:
    call = Call()
    out = call.on(SpeechStarted())  # the caller talks over the welcome
    assert out[0] == StopPlayback()
    out = call.on(HeardText("english"))
    assert call.engine.step_name == "ask"
    # a key during the next prompt stops it too, and is acted on
    out = call.on(Digit("0"))
    assert out[0] == StopPlayback()
    assert call.engine.step_name == "queue"


def test_press_0_or_say_agent_at_any_time_queues_the_call() -> None:
    call = Call()
    call.played()
    out = call.on(Digit("0"))  # in the language menu already
    assert call.engine.step_name == "queue"
    enqueue = next(a for a in out if isinstance(a, Enqueue))
    assert enqueue.language == "en" and enqueue.skills == ()
    assert {"step": "agent_request", "digit": "0"} in call.steps()

    spoken = Call()
    spoken.choose_english()
    spoken.played()
    spoken.on(HeardText("I want an agent"))
    assert spoken.engine.step_name == "queue"
    assert not any(isinstance(a, SendText) for a in spoken.actions)


def test_bot_self_service_sends_questions_and_reads_choices_as_keys() -> None:
    call = Call()
    call.choose_english()
    call.played()
    out = call.on(HeardText("how long does delivery take"))
    assert SendText("how long does delivery take") in out
    out = call.on(
        Delivered(
            "Delivery takes 3 days.\n\nDid this answer your question?",
            (("Yes", "Yes"), ("No", "No")),
        )
    )
    assert call.said(out) == [
        "Delivery takes 3 days.\n\nDid this answer your question?",
        "Press 1 for Yes. Press 2 for No.",
    ]
    assert all(a.speaker == "bot" for a in out if isinstance(a, Say))
    call.played()
    out = call.on(Digit("1"))
    assert SendText("Yes") in out
    # said instead of pressed
    call.on(Delivered("Anything else?", (("Yes", "Yes"), ("No", "No"))))
    call.played()
    assert SendText("No") in call.on(HeardText("no"))
    assert call.engine.choices_made[-2:] == [
        {"step": "ask", "digit": "1", "title": "Yes"},
        {"step": "ask", "said": "no"},
    ]


def test_bot_silence_leads_to_csat_and_a_rating() -> None:
    call = Call()
    call.choose_english()
    call.played()
    call.wait(15.1)
    assert call.engine.step_name == "csat"
    call.played()
    out = call.on(Digit("4"))
    assert RecordCsat(4) in out
    assert call.said(out) == ["Thank you for your rating."]
    out = call.played()
    assert call.engine.step_name == "goodbye"
    out = call.played()
    assert out[-1] == HangUp("flow_end")
    assert call.engine.summary()["csat"] == 4
    assert call.engine.next_deadline() is None


def test_csat_by_spoken_number_and_without_an_answer() -> None:
    call = Call(language="zh")
    call.choose_english()  # "1" picks English
    call.played()
    call.wait(16)
    call.played()
    assert RecordCsat(5) in call.on(HeardText("five"))

    silent = Call()
    silent.choose_english()
    silent.played()
    silent.wait(16)
    silent.played()
    silent.wait(8.1)
    assert silent.engine.step_name == "goodbye"
    assert {"step": "csat", "score": None} in silent.steps()


def test_the_bot_handing_off_moves_the_call_to_the_queue_once() -> None:
    call = Call()
    call.choose_english()
    out = call.on(HandedOff())
    assert call.engine.step_name == "queue"
    assert not any(isinstance(a, Enqueue) for a in out)  # the bot queued it already


def test_queue_announces_position_until_an_agent_joins_then_relays() -> None:
    call = Call()
    call.played()
    out = call.on(Digit("0"))
    assert call.said(out) == ["Please hold, we are connecting you to an agent."]
    assert not any(isinstance(a, AnnounceQueue) for a in out)  # not before the router has it
    out = call.on(InQueue())
    announce = [a for a in out if isinstance(a, AnnounceQueue)]
    assert len(announce) == 1 and "{position}" in announce[0].template
    assert announce[0].average_handle_s == 180
    call.played()
    out = call.wait(60)
    assert [type(a) for a in out] == [AnnounceQueue]
    assert not any(isinstance(a, AnnounceQueue) for a in call.on(InQueue()))  # next step
    out = call.on(AgentJoined(7))
    assert {"step": "agent_joined", "agent_id": 7} in call.steps()
    assert call.wait(120) == []  # no more announcements, no timeout
    # relay: the caller's words go to the agent, the agent's replies are spoken
    assert call.on(HeardText("my order is late")) == [SendText("my order is late")]
    out = call.on(Delivered("Let me check that for you."))
    assert [(a.text, a.speaker) for a in out if isinstance(a, Say)] == [
        ("Let me check that for you.", "agent")
    ]
    # resolved: the inbox's CSAT question (the bot's) is read out with its keys
    call.on(Resolved())
    out = call.on(Delivered("How would you rate us?", tuple((str(n), str(n)) for n in range(1, 6))))
    assert call.said(out)[1].startswith("Press 1 for 1. Press 2 for 2.")
    assert call.on(Digit("4")) == [
        StopPlayback(),  # a key stops the menu being read
        LogStep("choice", {"digit": "4", "title": "4"}),
        SendText("4"),
    ]
    assert call.wait(60)[-1] == HangUp("resolved")


def test_queue_timeout_and_router_overflow_go_to_voicemail() -> None:
    call = Call()
    call.played()
    call.on(Digit("0"))
    call.played()
    for _ in range(10):
        call.wait(60)
        call.played()
    assert call.engine.step_name == "voicemail"
    assert {"step": "queue_timeout", "waited_s": 600.0} in call.steps()

    over = Call()
    over.played()
    over.on(Digit("0"))
    over.on(Overflowed("voicemail"))
    assert over.engine.step_name == "voicemail"


def test_voicemail_records_until_hash_or_the_limit_and_asks_for_a_callback() -> None:
    call = Call(flow="after_hours")
    assert call.said() == [
        "Thank you for calling the Demo Shop. We are closed now; our hours are Monday to"
        " Friday, 9 to 6."
    ]
    call.on(SpeechStarted())  # no barge-in on the closed notice
    assert not any(isinstance(a, StopPlayback) for a in call.last)
    out = call.played()
    assert call.engine.step_name == "voicemail"
    assert Listen("en") in out  # any words, for the transcript (no menu grammar)
    out = call.played()
    assert out == [StartRecording()]
    out = call.on(Digit("#"))
    assert StopRecording(callback=True) in out
    assert call.engine.step_name == "goodbye"

    limit = Call(flow="after_hours")
    limit.played()
    limit.played()
    out = limit.wait(120)
    assert StopRecording(callback=True) in out


def test_hang_up_mid_prompt_and_mid_recording() -> None:
    call = Call()
    out = call.on(CallerGone("caller", "BYE"))
    assert out == [LogStep("hang_up", {"by": "caller", "reason": "BYE"})]
    assert call.engine.ended and call.engine.next_deadline() is None
    assert call.on(Digit("1")) == []

    recording = Call(flow="after_hours")
    recording.played()
    recording.played()
    out = recording.on(CallerGone("caller", "BYE"))
    assert out[1] == StopRecording(callback=True)  # what was said is kept


LOOPING = """\
languages: [en]
rules: [{name: r, numbers: ["*"], open: f}]
flows:
  f:
    start: m
    steps:
      m:
        type: menu
        say: Pick
        options: [{digit: "1", goto: m}]
        on_failure: end
      end: {type: hangup}
"""


def test_a_runaway_flow_ends_that_call_cleanly() -> None:
    call = Call(flow="f", text=LOOPING)
    call.played()
    for _ in range(600):  # the caller keeps pressing 1: the flow allows it, but not for ever
        call.on(Digit("1"))
        if call.engine.ended:
            break
    assert call.engine.ended
    assert call.last[-1] == HangUp("flow_error")
    assert any(s["step"] == "error" for s in call.steps())
