"""Calls end to end through the whole hub (issue #19): started from plain settings
(`channels.voice.twilio`, `phone_flows` = tests/phone/ko_flows.yaml), the real speech engines
(Vosk recognises the caller, pyttsx3 over espeak-ng speaks the prompts), and a Twilio Media
Streams caller (tests/phone/twilio_caller.py) speaking espeak-ng Korean and recognising what
the hub says with the real Korean Vosk model. No scripted speech anywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from channels.speech import VoskLiveSpeech
from hub.api.keys import ATTACHMENTS
from hub.model import ConversationStatus, Direction, EventKind
from tests.phone.audio import korean_speech
from tests.phone.e2e_support import (
    AGENT_EMAIL,
    AGENT_PASSWORD,
    AGENT_REPLY,
    BEEP_BYTES,
    CALLER,
    CLOSED_LINE,
    MENU,
    MENU_WORDS,
    REFUND,
    SENTENCE,
    VOICEMAIL,
    PhoneHub,
    eventually,
    recognise,
    spoken,
    start_phone_hub,
    telephone,
    wav_pcm,
)
from tests.support import Agent


@pytest.fixture(scope="module")
def ears() -> Iterator[VoskLiveSpeech]:
    """The caller's side of the line: the real Korean model (loaded once per process)."""
    live = VoskLiveSpeech()
    yield live
    live.close()


@pytest.fixture
async def phone(aiohttp_client: Any, tmp_path: Path) -> AsyncIterator[PhoneHub]:
    async for hub in start_phone_hub(aiohttp_client, tmp_path):
        yield hub


async def test_a_korean_call_menu_by_voice_and_key_relay_to_an_agent_and_keypad_csat(
    phone: PhoneHub, ears: VoskLiveSpeech
) -> None:
    agent_id = await phone.add_agent()
    agent = await Agent(phone.http, phone.url).login(AGENT_EMAIL, AGENT_PASSWORD)
    # Marks held back: the menu prompt is "still playing" when the caller talks over it.
    call = await phone.dial(marks="manual")
    conv = await phone.conversation_of(call)
    await call.until(lambda: len(call.heard) >= 4000)  # the menu is being said

    # Barge-in with real audio: the caller says "환불" over the menu; the hub clears what it
    # sent ahead, and the word (under the menu's grammar) takes the refund branch.
    await call.send_audio(spoken("환불"))
    await call.until(lambda: call.clears >= 1)
    await phone.until_step(conv.id, lambda s: s.get("name") == "refund")
    cut_at = call.cleared_at[0]
    menu_bytes = sum([await phone.spoken_bytes(part) for part in MENU])
    assert cut_at < menu_bytes  # the menu was cut short
    call.mark_mode = "instant"
    call.release_marks()

    # The refund notice, then the menu again, played out in full this time: the caller
    # hears the menu's option words (recognised under the menu's grammar by the real model
    # from the μ-law they got).
    refund = await phone.spoken_bytes(REFUND)
    parts = await phone.heard_parts(call, cut_at + refund, MENU)
    await call.press("2")  # the keypad: 2 is the agent queue
    assert [await recognise(ears, parts[i], MENU_WORDS) for i in (1, 3)] == ["환불", "상담원"]

    await phone.until_step(conv.id, lambda s: s.get("name") == "queue")

    async def queued() -> bool:
        return (await phone.conversation(conv.id)).status is ConversationStatus.QUEUED

    await eventually(queued)

    # Relay mode: the agent's typed Korean reply is spoken to the caller.
    reply_at = len(call.heard)
    status, _ = await agent.post(f"/api/conversations/{conv.id}/messages", {"text": AGENT_REPLY})
    assert status == 201
    await phone.until_step(conv.id, lambda s: s["step"] == "agent_joined")
    reply = await phone.until_heard(call, reply_at, await phone.spoken_bytes(AGENT_REPLY))
    assert await recognise(ears, reply, MENU_WORDS) == "아니요"

    # ... and the caller's free speech is a customer message in the voice conversation.
    await call.send_audio(spoken(SENTENCE))

    async def said() -> list[str]:
        return [
            m.text
            for m in await phone.messages(conv.id)
            if m.direction is Direction.INBOUND and "얼마" in m.text
        ]

    [text] = await eventually(said)
    assert any(
        c["speaker"] == "caller" and c["final"] and "얼마" in c["text"] for c in phone.captions
    )

    # The agent resolves: the flow asks for a rating by keypad; the caller presses 4 and
    # hangs up while being thanked (marks held back again: the thanks never finishes).
    call.mark_mode = "manual"
    status, _ = await agent.post(f"/api/conversations/{conv.id}/resolve")
    assert status == 200
    await phone.until_step(conv.id, lambda s: s.get("name") == "csat")
    await call.press("4")

    async def rated() -> bool:
        return (await phone.conversation(conv.id)).csat == 4

    await eventually(rated)
    await call.stop()
    ended = await phone.ended(conv.id)

    record = await phone.conversation(conv.id)
    assert record.channel == "voice" and record.csat == 4
    assert record.status is ConversationStatus.RESOLVED
    messages = await phone.messages(conv.id)
    assert [m.text for m in messages if m.direction is Direction.OUTBOUND] == [AGENT_REPLY]
    assert text in [m.text for m in messages if m.direction is Direction.INBOUND]
    events = await phone.events(conv.id)
    started = next(e.payload for e in events if e.kind is EventKind.CALL_STARTED)
    assert await phone.picked(conv.id) == ("open-line", "main", "open")
    assert started["transport"] == "twilio" and started["caller"] == CALLER
    steps = await phone.steps(conv.id)
    choices = [s for s in steps if s["step"] == "menu_choice"]
    assert [(c.get("speech"), c.get("digit"), c["option"]) for c in choices] == [
        ("환불", None, 1),
        (None, "2", 2),
    ]
    assert {"step": "csat", "score": 4} in [
        {k: s[k] for k in ("step", "score")} for s in steps if s["step"] == "csat"
    ]
    assert ended["hung_up_by"] == "caller" and ended["end"] == "caller"
    assert ended["duration_s"] > 0 and ended["agent_id"] == agent_id and ended["csat"] == 4
    assert ended["steps"][:4] == ["menu", "refund", "menu", "queue"]
    assert ended["talk"]["caller_utterances"] >= 2 and ended["talk"]["agent_utterances"] == 1
    assert events[-1].kind is EventKind.CALL_ENDED


async def test_out_of_hours_voicemail_then_a_forced_override(
    phone: PhoneHub, ears: VoskLiveSpeech
) -> None:
    # The closed line has no opening hours (settings, not the wall clock): out of hours.
    call = await phone.dial(dialled=CLOSED_LINE)
    conv = await phone.conversation_of(call)
    # The prompt, then the tone: once the tone has played out the hub records.
    await phone.until_heard(call, 0, await phone.spoken_bytes(VOICEMAIL) + BEEP_BYTES)
    await call.send_audio(spoken(SENTENCE))

    async def transcribed() -> bool:
        return any(c["speaker"] == "caller" and c["final"] for c in phone.captions)

    await eventually(transcribed)
    await call.press("#")
    ended = await phone.ended(conv.id)
    assert ended["hung_up_by"] == "hub" and ended["steps"] == ["voicemail", "bye"]

    [vm] = [m for m in await phone.messages(conv.id) if m.attachments]
    assert "얼마" in vm.text and vm.direction is Direction.INBOUND
    assert vm.attachments[0].content_type == "audio/wav"
    data = await phone.app[ATTACHMENTS].read(vm.attachments[0].storage_key)
    recorded = wav_pcm(data)
    # The WAV holds the caller's words sample for sample as the line delivered them.
    assert telephone(korean_speech(SENTENCE)) in recorded
    steps = await phone.steps(conv.id)
    [saved] = [s for s in steps if s["step"] == "voicemail_saved"]
    assert saved["callback"] is True and saved["phone"] == CALLER and "얼마" in saved["transcript"]
    assert (await phone.conversation(conv.id)).status is ConversationStatus.QUEUED
    assert await phone.picked(conv.id) == ("closed-line", "after_hours", "closed")

    # A forced override (an operator edits the flows file; the hub takes it on the next
    # call): the same closed line now answers with the main menu.
    forced = phone.flows.read_text(encoding="utf-8").replace(
        "    closed: after_hours\n", "    closed: after_hours\n    force: main\n"
    )
    phone.flows.write_text(forced, encoding="utf-8")
    second = await phone.dial(dialled=CLOSED_LINE)
    conv2 = await phone.conversation_of(second)
    await phone.until_step(conv2.id, lambda s: s.get("name") == "menu")
    await second.stop()
    assert await phone.picked(conv2.id) == ("closed-line", "main", "forced")
