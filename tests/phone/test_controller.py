"""The call controller through its public `CallControl` interface, on a real hub app
(SQLite store, services, outbox, bus) with the scripted fake audio of tests/phone/scripted.py."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from hub.api.app import CALL_CONTROL, DEMO_FAQ_TASK, create_app
from hub.api.keys import AGENTS, ATTACHMENTS, BUS, CONVERSATIONS, STORE
from hub.calls.controller import CallController
from hub.calls.media import CallInfo, Transport
from hub.config import Settings
from hub.errors import ConfigError
from hub.model import (
    Conversation,
    ConversationStatus,
    Direction,
    Event,
    EventKind,
    Identity,
    Message,
    Role,
)
from hub.ports import BusEnvelope, ChannelSendError, ConversationFilter, UnitOfWork
from tests.phone.e2e_support import eventually
from tests.phone.scripted import MemorySession, ScriptedSpeech

DEMO = Path(__file__).resolve().parents[2] / "hub" / "demo" / "phone.yaml"
CALLER = "+8613800138000"
T = TypeVar("T")


class Line:
    """The hub with its call controller, and calls placed into it."""

    def __init__(self, app: web.Application):
        self.app = app
        self.calls: CallController = app[CALL_CONTROL]
        self.store = app[STORE]
        self.captions: list[dict[str, Any]] = []
        app[BUS].subscribe(self._bus)
        self._seq = 0

    def _bus(self, envelope: BusEnvelope) -> None:
        if envelope["kind"] == "caption":
            self.captions.append(
                {"conversation_id": envelope["conversation_id"], **envelope["data"]}
            )

    def call(
        self,
        caller: str = CALLER,
        *,
        hold: bool = False,
        dialled: str = "+15550100",
        contact_id: int | None = None,
    ) -> tuple[MemorySession, asyncio.Task[None]]:
        self._seq += 1
        transport: Transport = "webrtc" if contact_id is not None else "sip"
        info = CallInfo(f"test:{self._seq}", transport, caller, dialled, 8000, contact_id)
        session = MemorySession(info, hold_playback=hold)
        return session, asyncio.create_task(self.calls.handle(session))

    async def conversation_of(self, session: MemorySession) -> Conversation:
        async def find() -> Conversation | None:
            live = self.calls.live_calls()
            ids = [cid for cid, call_id in live.items() if call_id == session.info.call_id]
            if not ids:
                return None
            return await self.store.read(lambda uow: uow.conversation(ids[0]))

        return await eventually(find)

    async def events(self, conversation_id: int) -> list[Event]:
        return await self.store.read(lambda uow: uow.events(conversation_id))

    async def messages(self, conversation_id: int) -> list[Message]:
        return await self.store.read(lambda uow: uow.messages(conversation_id))

    async def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        return await self.store.read(fn)


async def in_english_menu(session: MemorySession) -> None:
    """Choose English at the language menu; return once the main menu is being said."""
    await session.until_heard(lambda t: t == "中文请按 2。")
    session.press("1")
    await session.until_heard(lambda t: t.startswith("Press 9 to rate us"))


def steps(events: list[Event]) -> list[dict[str, Any]]:
    return [dict(e.payload) for e in events if e.kind is EventKind.CALL_STEP]


def settings_for(tmp_path: Path, flows: Path = DEMO, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "demo": False,
        "bot_enabled": False,
        "log_level": "warning",
        "channels": {"voice": {}},
        "phone_flows": flows,
    }
    return Settings(**(base | extra))


@pytest.fixture
async def line(aiohttp_client: Any, tmp_path: Path) -> Line:
    speech = ScriptedSpeech()
    app = create_app(settings_for(tmp_path), speech=(speech, speech))
    await aiohttp_client(app)
    return Line(app)


async def test_a_caller_hanging_up_mid_prompt_leaves_a_complete_record(line: Line) -> None:
    session, call = line.call(hold=True)
    # the demo line by the wall clock: the language menu in working hours, else the
    # closed notice (neither lets the caller cut it short)
    await session.until_heard(lambda t: t.startswith(("Welcome to the", "Thank you for calling")))
    conv = await line.conversation_of(session)
    session.end("caller", "BYE")
    await asyncio.wait_for(call, 10)

    assert conv.channel == "voice" and conv.inbox == "phone"
    contact = await line.read(lambda uow: uow.contact_by_identity(Identity("voice", CALLER)))
    assert contact is not None and contact.id == conv.contact_id
    events = await line.events(conv.id)
    kinds = [e.kind for e in events]
    assert kinds[0] is EventKind.CONVERSATION_CREATED
    started = next(e.payload for e in events if e.kind is EventKind.CALL_STARTED)
    assert started["rule"] == "shop-line" and started["flow"] in ("main", "after_hours")
    assert started["caller"] == CALLER and started["known_caller"] is False
    assert {"call_id": "test:1", "step": "hang_up", "by": "caller", "reason": "BYE"} in steps(
        events
    )
    ended = events[-1]
    assert ended.kind is EventKind.CALL_ENDED
    assert ended.payload["hung_up_by"] == "caller" and ended.payload["end"] == "caller"
    assert ended.payload["duration_s"] >= 0 and ended.payload["steps"][0] in ("language", "closed")
    assert line.calls.live_calls() == {}
    with pytest.raises(ChannelSendError):
        await line.calls.deliver(conv, (await line.messages(conv.id) or [_fake(conv)])[0])


def _fake(conv: Conversation) -> Message:
    return Message(0, conv.id, Direction.OUTBOUND, "bot", "hello", "voice")  # type: ignore[arg-type]


FORCED = """\
languages: [en, zh]
rules:
  - {name: line, numbers: ["*"], open: main, force: FORCE}
flows:
  main:
    start: language
    agent: {digit: "0", words: {en: [agent], zh: [人工]}, goto: queue}
    steps:
      language:
        type: menu
        say: [{en: "For English press 1."}, {zh: "中文请按 2。"}]
        options:
          - {digit: "1", language: en, goto: menu}
          - {digit: "2", language: zh, goto: menu}
        on_failure: menu
      menu:
        type: menu
        say: {en: "Press 9 to rate us, 1 to ask, 0 for an agent.", zh: "评分请按 9，人工请按 0。"}
        options: [{digit: "9", goto: csat}, {digit: "1", goto: ask}]
        on_failure: bye
      ask:
        type: bot
        say: {en: "Ask your question.", zh: "请说出您的问题。"}
        handoff: queue
        silence_s: 60
        on_silence: csat
      queue:
        type: queue
        say: {en: "Please hold.", zh: "请稍候。"}
        announce:
          en: "You are number {position}; about {minutes} minutes."
          zh: "您排在第 {position} 位。"
        on_timeout: voicemail
      voicemail:
        type: voicemail
        say: {en: "Leave a message after the tone.", zh: "请在提示音后留言。"}
        goto: bye
      csat:
        type: csat
        say: {en: "Rate us from 1 to 5.", zh: "请按 1 到 5 评分。"}
        thanks: {en: "Thank you.", zh: "谢谢。"}
        goto: bye
      bye: {type: hangup, say: {en: "Goodbye.", zh: "再见。"}}
"""


async def start_line(
    aiohttp_client: Any, tmp_path: Path, force: str = "main", **extra: Any
) -> Line:
    flows = tmp_path / "phone.yaml"
    flows.write_text(FORCED.replace("force: FORCE", f"force: {force}"), encoding="utf-8")
    speech = ScriptedSpeech()
    app = create_app(settings_for(tmp_path, flows, **extra), speech=(speech, speech))
    await aiohttp_client(app)
    return Line(app)


async def test_queue_then_relay_agent_replies_are_spoken_and_caller_speech_is_messages(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    line = await start_line(aiohttp_client, tmp_path)
    agent = await line.app[AGENTS].add("a@example.com", "Ann", Role.AGENT, "password-123")
    session, call = line.call()
    await session.until_heard(lambda t: t == "中文请按 2。")
    session.press("2")
    await session.until_heard(lambda t: t.startswith("评分请按 9"))
    session.press("0")  # "press 0 for an agent" at any time
    await session.until_heard(lambda t: t == "请稍候。")
    conv = await line.conversation_of(session)

    async def queued() -> Conversation | None:
        c = await line.read(lambda uow: uow.conversation(conv.id))
        return c if c is not None and c.status is ConversationStatus.QUEUED else None

    queued_conv = await eventually(queued)
    assert queued_conv.language == "zh"

    # the agent answers from the inbox: spoken to the caller, in Chinese
    await line.app[CONVERSATIONS].reply(conv.id, agent.id, "您好，我是 Ann，请问有什么可以帮您？")
    await session.until_heard(lambda t: t.startswith("您好，我是 Ann"))
    assert session.heard[-1].language == "zh"
    # the caller's words reach the agent as messages, and as live captions
    session.say("我的订单还没到")

    async def customer_said() -> list[Message]:
        return [m for m in await line.messages(conv.id) if m.text == "我的订单还没到"]

    [said] = await eventually(customer_said)
    assert said.direction is Direction.INBOUND and said.channel == "voice"
    assert {"speaker": "caller", "text": "我的订", "final": False} in [
        {k: c[k] for k in ("speaker", "text", "final")} for c in line.captions
    ] or any(c["speaker"] == "caller" and not c["final"] for c in line.captions)
    assert any(
        c["speaker"] == "caller" and c["final"] and c["text"] == "我的订单还没到"
        for c in line.captions
    )
    assert any(
        c["speaker"] == "hub" and c["text"].startswith("您好，我是 Ann") for c in line.captions
    )

    session.end("caller", "BYE")
    await asyncio.wait_for(call, 10)
    events = await line.events(conv.id)
    step_names = [s["step"] for s in steps(events)]
    assert "agent_request" in step_names and "agent_joined" in step_names
    ended = events[-1].payload
    assert ended["agent_id"] == agent.id and ended["queued"] is True
    assert ended["language"] == "zh" and ended["talk"]["caller_utterances"] == 1
    assert ended["talk"]["agent_utterances"] == 1 and ended["choices"][0]["digit"] == "2"


async def test_csat_by_keypad_is_the_conversation_rating(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    line = await start_line(aiohttp_client, tmp_path)
    session, call = line.call()
    await in_english_menu(session)
    session.press("9")
    await session.until_heard(lambda t: t == "Rate us from 1 to 5.")
    session.press("4")
    await asyncio.wait_for(call, 10)  # thanks, goodbye, and the hub hangs up
    assert [u.text for u in session.heard[-2:]] == ["Thank you.", "Goodbye."]
    [conv] = await line.read(lambda uow: uow.conversations(ConversationFilter(include_empty=True)))
    assert conv.csat == 4 and conv.status is ConversationStatus.RESOLVED
    events = await line.events(conv.id)
    assert {"call_id": "test:1", "step": "csat", "score": 4} in steps(events)
    assert events[-1].payload["hung_up_by"] == "hub" and events[-1].payload["end"] == "flow_end"


async def test_voicemail_out_of_hours_is_an_attachment_transcript_and_callback(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    line = await start_line(aiohttp_client, tmp_path, force="main")
    session, call = line.call()
    await in_english_menu(session)
    session.press("0")
    conv = await line.conversation_of(session)
    # no agent takes it: the router's overflow sends the call to voicemail
    line.calls._on_bus(
        {
            "kind": "routing.decision",
            "conversation_id": conv.id,
            "data": {"decision": "overflow", "action": "voicemail"},
            "origin": "x",
        }
    )
    await session.until_heard(lambda t: t == "Leave a message after the tone.")
    # wait until recording started (the beep is played just before)
    await eventually(lambda: _recording(line, conv.id))
    session.audio(b"\1\0" * 8000)  # a second of sound
    session.say("please call me back about my order")
    session.press("#")
    await session.until_heard(lambda t: t == "Goodbye.")
    await asyncio.wait_for(call, 10)

    messages = await line.messages(conv.id)
    [vm] = [m for m in messages if m.attachments]
    assert vm.text == "please call me back about my order"
    assert vm.attachments[0].content_type == "audio/wav"
    data = await line.app[ATTACHMENTS].read(vm.attachments[0].storage_key)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.getnframes() >= 8000
    saved = [s for s in steps(await line.events(conv.id)) if s["step"] == "voicemail_saved"]
    assert saved and saved[0]["callback"] is True and saved[0]["phone"] == CALLER


async def _recording(line: Line, conversation_id: int) -> bool:
    return any(
        s["step"] == "step" and s.get("type") == "voicemail"
        for s in steps(await line.events(conversation_id))
    )


async def test_screen_pop_finds_the_caller_and_their_history(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    line = await start_line(aiohttp_client, tmp_path)
    first, call = line.call()
    await in_english_menu(first)
    first.press("0")
    conv = await line.conversation_of(first)
    first.say("hello")
    await eventually(lambda: _has_messages(line, conv.id))
    first.end()
    await call

    second, call2 = line.call()
    await second.until_heard(lambda t: t == "中文请按 2。")
    conv2 = await line.conversation_of(second)
    second.end()
    await call2
    assert conv2.contact_id == conv.contact_id and conv2.id != conv.id
    started = next(
        e.payload for e in await line.events(conv2.id) if e.kind is EventKind.CALL_STARTED
    )
    assert started["known_caller"] is True
    assert [h["id"] for h in started["history"]] == [conv.id]

    # a call from the web widget brings its contact along
    web, call3 = line.call("webrtc:7f3a", contact_id=conv.contact_id)
    await web.until_heard(lambda t: t == "中文请按 2。")
    conv3 = await line.conversation_of(web)
    web.end()
    await call3
    assert conv3.contact_id == conv.contact_id and conv3.channel == "voice"


async def _has_messages(line: Line, conversation_id: int) -> bool:
    return bool(await line.messages(conversation_id))


async def test_a_broken_flow_edit_keeps_the_flows_in_use(
    aiohttp_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    line = await start_line(aiohttp_client, tmp_path)
    flows = tmp_path / "phone.yaml"
    flows.write_text(
        FORCED.replace("goto: csat", "goto: nowhere").replace("force: FORCE", "force: main"),
        encoding="utf-8",
    )
    session, call = line.call()
    await session.until_heard(lambda t: t == "中文请按 2。")  # the old flows still answer
    session.end()
    await call
    assert any(
        "not reloaded" in r.message and "no step named 'nowhere'" in r.message
        for r in caplog.records
    )
    # a good edit is taken by the next call
    flows.write_text(
        FORCED.replace("force: FORCE", "force: main").replace("中文请按 2。", "中文服务请按 2。"),
        encoding="utf-8",
    )
    session, call = line.call()
    await session.until_heard(lambda t: t == "中文服务请按 2。")
    session.end()
    await call


async def test_a_bad_flows_file_stops_start_up_naming_the_line(tmp_path: Path) -> None:
    flows = tmp_path / "phone.yaml"
    flows.write_text(FORCED.replace("force: FORCE", "force: mian"), encoding="utf-8")
    speech = ScriptedSpeech()
    with pytest.raises(
        ConfigError, match=r"phone\.yaml:3: rules\[0\]\.force: no flow named 'mian'"
    ):
        create_app(settings_for(tmp_path, flows), speech=(speech, speech))


async def test_bot_self_service_speaks_the_short_answer_and_takes_helped_by_key(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    line = await start_line(
        aiohttp_client, tmp_path, demo=True, bot_enabled=True, kb_semantic=False
    )
    await asyncio.shield(line.app[DEMO_FAQ_TASK])  # the demo FAQ is in and indexed
    session, call = line.call()
    await in_english_menu(session)
    session.press("1")
    await session.until_heard(lambda t: t == "Ask your question.")
    session.say("How long does delivery take?")
    answer = await session.until_heard(lambda t: "3 to 5 working days" in t)
    assert "http" not in answer and "|" not in answer  # the short answer, spoken: no link, no table
    await session.until_heard(lambda t: t == "Press 1 for Yes. Press 2 for No.")
    session.press("1")  # it helped
    conv = await line.conversation_of(session)

    async def feedback() -> list[Event]:
        return [
            e
            for e in await line.events(conv.id)
            if e.kind is EventKind.BOT_DECISION and e.payload.get("decision") == "feedback"
        ]

    [vote] = await eventually(feedback)
    assert vote.payload["helpful"] is True
    texts = [m.text for m in await line.messages(conv.id) if m.direction is Direction.INBOUND]
    assert texts == ["How long does delivery take?", "Yes"]
    session.end()
    await call


POLICY = """\
skills: [orders]
inboxes:
  "*":
    filters:
      - name: everyone
        steps: [{timeout_s: 600}]
"""


async def test_callers_on_hold_hear_their_place_in_the_queue(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "routing.yaml"
    policy.write_text(POLICY, encoding="utf-8")
    line = await start_line(aiohttp_client, tmp_path, routing_policy=policy)
    places = []
    calls = []
    for _ in range(2):
        session, call = line.call()
        calls.append((session, call))
        await in_english_menu(session)
        session.press("0")
        places.append(await session.until_heard(lambda t: t.startswith("You are number")))
    # nobody on shift: the wait counts one agent's average handle time (180 s) per place
    assert places == ["You are number 1; about 3 minutes.", "You are number 2; about 6 minutes."]
    for session, call in calls:
        session.end()
        await call


async def test_speaking_or_a_key_stops_the_prompt(aiohttp_client: Any, tmp_path: Path) -> None:
    line = await start_line(aiohttp_client, tmp_path)
    session, call = line.call(hold=True)  # prompts play until cut
    await session.until_heard(lambda t: t == "For English press 1.")
    session.press("2")  # during the first part of the language menu
    await session.until_heard(lambda t: t.startswith("评分请按 9"))
    assert session.stops == 1
    assert "中文请按 2。" not in [u.text for u in session.heard]  # the rest was dropped
    session.say("人工")  # the caller talks over the menu: cut, and the words count
    await session.until_heard(lambda t: t == "请稍候。")
    assert session.stops == 2
    session.end()
    await call
