"""The call controller: runs each answered call's flow over its media session.

One `CallController` serves every transport (`hub.calls.media.CallControl`). Per call it
picks the inbound rule and flow (`hub.calls.flows`) from the dialled number and the clock,
finds the caller's contact by their number (screen pop: their history on every channel goes
into the call's first event) and opens a "voice" conversation. Then three tasks run until the
caller or the flow hangs up:

- the listener reads the session: audio goes to a live recogniser (partial words become
  "caption" envelopes on the bus; final ones events for the engine), keys become events;
- the speaker synthesises and plays what the engine says, one utterance after another, and
  reports each played out (barge-in cuts it: `stop_playback`);
- the driver feeds the pure `FlowEngine` and carries out its actions through the existing
  services: the caller's words and choices are customer messages (the bot runner answers
  them; `deliver` speaks the answer and reads its choices as keys), the queue is a hand-off
  the router offers to agents (relay mode: the agent's replies are spoken), a voicemail is a
  WAV attachment with its transcript and a callback request, CSAT a rating on the
  conversation. Every step is a `call.step` event; the call's end a `call.ended` with the
  duration, who talked and who hung up.

A step that fails ends that call only (logged, recorded), never the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import itertools
import logging
import math
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub import wire
from hub.calls import engine as e
from hub.calls.flows import PhoneConfig, Picked, load_phone_config
from hub.calls.media import AudioIn, CallInfo, Dtmf, HangUp, MediaSession
from hub.channel_names import VOICE
from hub.errors import ConfigError
from hub.formatting import plain
from hub.model import (
    Attachment,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryState,
    EventKind,
    Identity,
    InboundMessage,
    Message,
    Priority,
    utcnow,
)
from hub.ports import (
    AttachmentStore,
    BusEnvelope,
    ChannelSendError,
    ConversationFilter,
    EventBus,
    LiveSpeechToText,
    SendResult,
    SpeechStream,
    Store,
    TextToSpeech,
    UnitOfWork,
)
from hub.routing.sourcelines import ConfigFileError
from hub.services.conversations import (
    BotTurn,
    ConversationService,
    do_bot_turn,
    do_open_conversation,
)

log = logging.getLogger(__name__)

Clock = Callable[[], float]
QueuePosition = Callable[[int], tuple[int, int] | None]
HISTORY = 10  # the caller's other conversations shown in the screen pop
HANG_UP_GRACE_S = 5.0  # after the hub hangs up, how long to wait for the transport to agree
GOODBYE_MAX_S = 60.0  # the last words before the hub hangs up play at most this long
BEEP_HZ, BEEP_S = 1000, 0.3  # the tone before a voicemail recording


class FlowFile:
    """The flows file, reloaded when it changes (like the routing policy, a bad edit is
    logged with its lines and the flows in use stay)."""

    def __init__(self, path: Path):
        self.path = path
        self._stamp: tuple[int, int] | None = None
        try:
            self._config = self._load()
        except ConfigFileError as exc:
            raise ConfigError("phone_flows: " + "; ".join(exc.problems)) from None

    def _load(self) -> PhoneConfig:
        try:
            st = self.path.stat()
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigFileError([f"{self.path}: cannot read: {exc}"]) from None
        config = load_phone_config(text, str(self.path))
        self._stamp = (st.st_mtime_ns, st.st_size)
        return config

    def current(self) -> PhoneConfig:
        """The flows now: the file again if it changed since it was read."""
        try:
            st = self.path.stat()
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                self._config = self._load()
                log.info("phone flows reloaded from %s", self.path)
        except OSError as exc:
            log.error("phone flows %s not reloaded: %s", self.path, exc)
        except ConfigFileError as exc:
            self._stamp = (st.st_mtime_ns, st.st_size)  # logged once per edit
            log.error("phone flows %s not reloaded: %s", self.path, "; ".join(exc.problems))
        return self._config


@dataclass(frozen=True, slots=True)
class _Opened:
    conversation: Conversation
    contact: Contact
    known: bool  # the caller's number (or widget contact) was known already
    history: list[dict[str, Any]]


class CallController:
    """`CallControl` for the phone channel (see the module doc)."""

    def __init__(
        self,
        *,
        store: Store,
        conversations: ConversationService,
        bus: EventBus,
        attachments: AttachmentStore,
        speech_to_text: LiveSpeechToText,
        text_to_speech: TextToSpeech,
        flows: FlowFile | Callable[[], PhoneConfig],
        clock: Clock = time.time,
        queue_position: QueuePosition | None = None,
    ):
        self.store = store
        self.conversations = conversations
        self.bus = bus
        self.attachments = attachments
        self.stt = speech_to_text
        self.tts = text_to_speech
        self.flows: Callable[[], PhoneConfig] = (
            flows.current if isinstance(flows, FlowFile) else flows
        )
        self.clock = clock
        # The router's read of a waiting call's place (RoutingService.queue_position); None
        # while routing is off: the queue step then says no position.
        self.queue_position = queue_position
        self._calls: dict[int, _Call] = {}  # by conversation id
        self._unsubscribe: Callable[[], None] | None = None

    # --- wiring -------------------------------------------------------------------------------

    def follow(self, bus: EventBus) -> Callable[[], None]:
        """React to the conversation's changes (hand-off, agent, resolve, overflow)."""
        self._unsubscribe = bus.subscribe(self._on_bus)
        return self._unsubscribe

    async def close(self) -> None:
        """Hang up every live call (shutdown)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for call in list(self._calls.values()):
            with contextlib.suppress(Exception):
                await call.session.hang_up()

    def live_calls(self) -> dict[int, str]:
        """Conversation id -> call id of every call in progress."""
        return {cid: call.info.call_id for cid, call in self._calls.items()}

    # --- CallControl ----------------------------------------------------------------------------

    async def handle(self, session: MediaSession) -> None:
        call = _Call(self, session)
        try:
            await call.run()
        except asyncio.CancelledError:
            call.end_reason = call.end_reason or "stopped"
            raise
        except Exception:  # a bug in a step ends this call, never the transport or the hub
            log.exception("call %s failed", session.info.call_id)
            call.end_reason = "error"
        finally:
            await call.finish()

    async def deliver(self, conversation: Conversation, message: Message) -> SendResult:
        call = self._calls.get(conversation.id)
        if call is None or call.gone:
            raise ChannelSendError("no call is live for this conversation", retryable=False)
        text = plain(message.text)
        call.post(
            e.Delivered(
                text,
                tuple((c.title, c.payload) for c in message.choices),
                conversation.language,
                "agent" if message.author_kind is AuthorKind.AGENT else "bot",
            )
        )
        return SendResult(DeliveryState.DELIVERED, f"{call.info.call_id}:out:{message.id}")

    # --- the bus ----------------------------------------------------------------------------------

    def _on_bus(self, envelope: BusEnvelope) -> None:
        conv_id = envelope["conversation_id"]
        call = self._calls.get(conv_id) if conv_id is not None else None
        if call is None:
            return
        data = envelope["data"]
        kind = envelope["kind"]
        if kind == EventKind.CONVERSATION_UPDATED.value:
            old, new = (data.get("changes") or {}).get("status") or [None, None]
            conv = data.get("conversation") or {}
            if old == new:
                return
            if new == ConversationStatus.QUEUED.value and "handoff" in data:
                call.post(e.HandedOff())
            elif new == ConversationStatus.ASSIGNED.value:
                call.post(e.AgentJoined(conv.get("assignee_id")))
            elif new == ConversationStatus.RESOLVED.value and "csat" not in data:
                call.post(e.Resolved())
        elif kind == EventKind.ROUTING_DECISION.value:
            if data.get("decision") == "queued":
                call.post(e.InQueue())
            elif data.get("decision") == "overflow":
                call.post(e.Overflowed(str(data.get("action"))))


class _Call:
    """One call in progress (see the module doc)."""

    def __init__(self, controller: CallController, session: MediaSession):
        self.c = controller
        self.session = session
        self.info: CallInfo = session.info
        self.events: asyncio.Queue[e.Event] = asyncio.Queue()
        self.started = controller.clock()
        self.engine: e.FlowEngine | None = None
        self.conversation: Conversation | None = None
        self.picked: Picked | None = None
        self.language = "en"
        self.stream: SpeechStream | None = None
        self.grammar: tuple[str, ...] = ()
        self.speech: asyncio.Queue[tuple[int, str, str, str] | None] = asyncio.Queue()
        self.tasks: list[asyncio.Task[None]] = []
        self.recording: bytearray | None = None
        self.recording_text: list[str] = []
        self.gone = False
        self.hung_up: HangUp | None = None
        self.end_reason = ""
        # who talked: utterances each (the caller's recognised ones) and seconds played
        self.talk: dict[str, float] = {
            "caller_utterances": 0,
            **{
                f"{who}_{what}": 0
                for who in ("hub", "bot", "agent")
                for what in ("utterances", "s")
            },
        }
        self._message_seq = itertools.count(1)
        self._no_speech_logged = False

    def post(self, event: e.Event) -> None:
        self.events.put_nowait(event)

    # --- the call's life ----------------------------------------------------------------------

    async def run(self) -> None:
        config = self.c.flows()
        self.picked = config.choose(self.info.dialled, self.c.clock())
        inbox = self.picked.inbox if self.picked else "phone"
        opened = await self.c.store.write(lambda uow: self._open(uow, inbox, config))
        self.conversation = opened.conversation
        self.c._calls[opened.conversation.id] = self
        hint = self.info.language or opened.contact.language
        if self.picked is None:
            log.error("call %s: no inbound rule takes %r", self.info.call_id, self.info.dialled)
            self.end_reason = "no_rule"
            await self._hang_up()
            await self._wait_gone()
            return
        self.engine = e.FlowEngine(config, self.picked.flow, self.c.clock, hint)
        self.language = self.engine.language
        self.tasks = [
            asyncio.create_task(self._listen(), name=f"call-listen-{self.info.call_id}"),
            asyncio.create_task(self._speak(), name=f"call-speak-{self.info.call_id}"),
        ]
        await self._apply(self.engine.start())
        while not self.gone:
            deadline = self.engine.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.c.clock())
            if self.engine.ended and not self.gone:
                timeout = HANG_UP_GRACE_S if timeout is None else timeout
            try:
                async with asyncio.timeout(timeout):
                    event = await self.events.get()
            except TimeoutError:
                if self.engine.ended:
                    break  # the transport never confirmed the hang-up
                event = e.Tick()
            if isinstance(event, e.CallerGone):
                self.gone = True
            await self._apply(self.engine.on(event))

    async def _wait_gone(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(HANG_UP_GRACE_S):
                async for event in self.session.events():
                    if isinstance(event, HangUp):
                        self.hung_up = event
                        break

    async def finish(self) -> None:
        """Close everything the call opened and write its end (always runs)."""
        self.gone = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.stream is not None:
            self.stream.close()
        if self.recording is not None:  # the call failed mid-recording: keep what was said
            with contextlib.suppress(Exception):
                await self._save_voicemail(callback=True)
        conv = self.conversation
        if conv is None:
            return
        self.c._calls.pop(conv.id, None)
        if not self.hung_up:
            with contextlib.suppress(Exception):
                await self.session.hang_up()
        summary = self.engine.summary() if self.engine else {}
        payload = {
            "call_id": self.info.call_id,
            "duration_s": round(self.c.clock() - self.started, 1),
            "hung_up_by": self.hung_up.by if self.hung_up else "hub",
            "hang_up_reason": self.hung_up.reason if self.hung_up else "",
            "end": self.end_reason or ("caller" if self.hung_up else "hub"),
            "rule": self.picked.rule if self.picked else None,
            **summary,
            "talk": {k: round(v, 2) for k, v in self.talk.items()},
        }
        try:
            await self.c.store.write(
                lambda uow: uow.append_event(EventKind.CALL_ENDED, conv.id, payload)
            )
        except Exception:
            log.exception("call %s: its end was not recorded", self.info.call_id)

    def _open(self, uow: UnitOfWork, inbox: str, config: PhoneConfig) -> _Opened:
        """The caller's contact (screen pop) and a new voice conversation, with the call's
        first event."""
        info = self.info
        contact = uow.contact(info.contact_id) if info.contact_id is not None else None
        if contact is None:
            contact = uow.contact_by_identity(Identity(VOICE, info.caller))
        known = contact is not None
        language = info.language or (contact.language if contact else None)
        status = ConversationStatus.BOT  # the flow has the call; the router gets it on hand-off
        if contact is None:
            conv = do_open_conversation(
                uow, VOICE, inbox, info.caller, info.caller, language, status
            )
            found = uow.contact(conv.contact_id)
            assert found is not None
            contact = found
        else:
            conv = uow.create_conversation(contact.id, VOICE, inbox, status, language)
            uow.append_event(
                EventKind.CONVERSATION_CREATED,
                conv.id,
                {"conversation": wire.conversation_json(conv, contact)},
            )
        others = [
            c
            for c in uow.conversations(
                ConversationFilter(contact_id=contact.id, include_empty=False, limit=HISTORY + 1)
            )
            if c.id != conv.id
        ][:HISTORY]
        history = [
            {"id": c.id, "channel": c.channel, "status": c.status.value, "inbox": c.inbox}
            for c in others
        ]
        picked = self.picked
        uow.append_event(
            EventKind.CALL_STARTED,
            conv.id,
            {
                "call_id": info.call_id,
                "transport": info.transport,
                "caller": info.caller,
                "dialled": info.dialled,
                "rule": picked.rule if picked else None,
                "flow": picked.flow if picked else None,
                "window": picked.window if picked else None,
                "flows_source": config.source,
                "contact": wire.contact_json(contact),
                "known_caller": known,
                "history": history,
            },
        )
        return _Opened(conv, contact, known, history)

    # --- the listener and the speaker ---------------------------------------------------------

    async def _listen(self) -> None:
        try:
            gone = await self._read_session()
        except Exception:  # a transport fault must still end the call cleanly
            log.exception("call %s: the media session failed", self.info.call_id)
            gone = e.CallerGone("error", "media session failed")
        self.post(gone)

    async def _read_session(self) -> e.CallerGone:
        async for event in self.session.events():
            if isinstance(event, AudioIn):
                if self.recording is not None:
                    self.recording += event.pcm
                stream = self.stream
                if stream is None:
                    continue
                try:
                    heard = await stream.feed(event.pcm)
                except Exception:  # a recogniser fault: keys still work
                    if stream is self.stream:  # not merely replaced meanwhile (a new menu)
                        log.exception("call %s: speech recognition failed", self.info.call_id)
                        self._drop_stream()
                    continue
                for h in heard:
                    self._heard(h.kind, h.text)
            elif isinstance(event, Dtmf):
                self.post(e.Digit(event.digit))
            elif isinstance(event, HangUp):
                self.hung_up = event
                if self.stream is not None:
                    with contextlib.suppress(Exception):
                        last = await self.stream.finish()
                        if last is not None and last.kind == "final":
                            self._heard("final", last.text)
                return e.CallerGone(event.by, event.reason)
        return e.CallerGone("error", "media session ended without a hang-up")

    def _heard(self, kind: str, text: str) -> None:
        if kind == "speech":
            self.post(e.SpeechStarted())
        elif kind == "partial":
            self._caption("caller", text, final=False)
        elif kind == "final":
            if text:
                self._caption("caller", text, final=True)
                self.talk["caller_utterances"] += 1
                if self.recording is not None:
                    self.recording_text.append(text)
            self.post(e.HeardText(text))

    async def _speak(self) -> None:
        rate = self.info.sample_rate
        while True:
            item = await self.speech.get()
            if item is None:
                return
            seq, language, text, speaker = item
            done = False
            try:
                pcm = await self.c.tts.synthesize(
                    text, sample_rate=rate, language=language, cache=speaker == "hub"
                )
                self._caption("hub", text, final=True)
                done = await self.session.play(pcm)
                who = speaker if f"{speaker}_s" in self.talk else "hub"
                self.talk[f"{who}_s"] += len(pcm) / 2 / rate
                self.talk[f"{who}_utterances"] += 1
            except Exception:
                log.exception("call %s: could not say %r", self.info.call_id, text[:80])
            self.post(e.PromptDone(seq, done))

    def _say(self, seq: int, language: str, text: str, speaker: str) -> None:
        self.speech.put_nowait((seq, language, text, speaker))

    def _caption(self, speaker: str, text: str, *, final: bool) -> None:
        conv = self.conversation
        if conv is None or not text:
            return
        self.c.bus.publish(
            {
                "kind": "caption",
                "conversation_id": conv.id,
                "data": {
                    "call_id": self.info.call_id,
                    "speaker": speaker,
                    "text": text,
                    "final": final,
                },
                "origin": self.c.bus.node_id,
            }
        )

    def _drop_stream(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(Exception):
                self.stream.close()
        self.stream = None

    def _listen_with(self, language: str, grammar: tuple[str, ...]) -> None:
        self._drop_stream()
        try:
            self.stream = self.c.stt.stream(
                sample_rate=self.info.sample_rate, language=language, grammar=grammar
            )
        except LookupError:
            if not self._no_speech_logged:
                log.warning(
                    "call %s: no speech model for %r; the caller can use the keypad",
                    self.info.call_id,
                    language,
                )
                self._no_speech_logged = True

    # --- the engine's actions -----------------------------------------------------------------

    async def _apply(self, actions: list[e.Action]) -> None:
        for action in actions:
            await self._do(action)

    async def _do(self, action: e.Action) -> None:
        conv = self.conversation
        assert conv is not None
        match action:
            case e.Say(seq, language, text, _barge, speaker):
                self._say(seq, language, text, speaker)
            case e.AnnounceQueue(seq, language, template, average_handle_s):
                announced = self._queue_text(template, average_handle_s)
                if announced is None:  # routing is off: no place to tell
                    self.post(e.PromptDone(seq, False))
                else:
                    self._say(seq, language, announced, "hub")
            case e.StopPlayback():
                while not self.speech.empty():
                    self.speech.get_nowait()
                self.session.stop_playback()
            case e.SetLanguage(language):
                self.language = language
                await self.c.store.write(lambda uow: _set_language(uow, conv.id, language))
            case e.Listen(language, grammar):
                self._listen_with(language, grammar)
            case e.SendText(text):
                await self._send(text)
            case e.Enqueue(skills, priority, language, reason):
                await self.c.store.write(
                    lambda uow: _queue(uow, conv.id, self.info.call_id, skills, priority, reason)
                )
            case e.StartRecording():
                await self.session.play(_beep(self.info.sample_rate))
                self.recording = bytearray()
                self.recording_text = []
            case e.StopRecording(callback):
                await self._save_voicemail(callback)
            case e.RecordCsat(score):
                await self.c.conversations.bot_turn(
                    BotTurn(
                        conv.id,
                        f"call:{self.info.call_id}:csat",
                        (),
                        {"decision": "csat", "via": "keypad", "score": score},
                        None,
                        csat=score,
                        needs_bot_status=False,
                    )
                )
            case e.HangUp(reason):
                self.end_reason = reason
                await self._hang_up()
            case e.LogStep(step, data):
                payload = {"call_id": self.info.call_id, "step": step, **data}
                await self.c.store.write(
                    lambda uow: uow.append_event(EventKind.CALL_STEP, conv.id, payload)
                )

    async def _hang_up(self) -> None:
        # Let what is being said end first (the goodbye), then hang up.
        self.speech.put_nowait(None)
        if self.tasks:
            await asyncio.wait(self.tasks[1:2], timeout=GOODBYE_MAX_S)
        await self.session.hang_up()

    async def _send(
        self, text: str, key: str | None = None, attachments: tuple[Attachment, ...] = ()
    ) -> None:
        """The caller's words (a transcript, a choice, a voicemail) as a customer message,
        idempotent on the call and `key`."""
        conv = self.conversation
        assert conv is not None
        await self.c.conversations.receive(
            InboundMessage(
                channel=VOICE,
                inbox=conv.inbox,
                sender=Identity(VOICE, self.info.caller),
                text=text,
                channel_message_id=f"{self.info.call_id}:{key or next(self._message_seq)}",
                language=self.language,
                attachments=attachments,
                conversation_id=conv.id,
            )
        )

    def _queue_text(self, template: str, average_handle_s: float) -> str | None:
        conv = self.conversation
        read = self.c.queue_position
        found = read(conv.id) if read is not None and conv is not None else None
        if found is None:
            return None
        position, serving = found
        minutes = max(1, math.ceil(position * average_handle_s / max(1, serving) / 60))
        return template.format(position=position, minutes=minutes)

    async def _save_voicemail(self, callback: bool) -> None:
        """The recording as a WAV attachment on a customer message carrying its transcript,
        after the conversation went to people with a callback request."""
        pcm, self.recording = bytes(self.recording or b""), None
        conv = self.conversation
        if conv is None:
            return
        if self.stream is not None and self.gone:
            with contextlib.suppress(Exception):
                last = await self.stream.finish()
                if last is not None and last.text:
                    self.recording_text.append(last.text)
        transcript = " ".join(t for t in self.recording_text if t).strip()
        seconds = len(pcm) / 2 / self.info.sample_rate
        attachment: Attachment | None = None
        if seconds >= 0.5:
            stamp = utcnow().strftime("%Y%m%d-%H%M%S")
            attachment = await self.c.attachments.save(
                _wav(pcm, self.info.sample_rate), f"voicemail-{stamp}.wav", "audio/wav"
            )
        caller = self.info.caller
        await self.c.store.write(
            lambda uow: _voicemail_handoff(
                uow, conv.id, self.info.call_id, caller, callback, round(seconds, 1), transcript
            )
        )
        if attachment is not None or transcript:
            await self._send(transcript, "voicemail", (attachment,) if attachment else ())


# --- units of work --------------------------------------------------------------------------


def _set_language(uow: UnitOfWork, conversation_id: int, language: str) -> None:
    conv = uow.conversation(conversation_id, for_update=True)
    if conv is not None and conv.language != language:
        uow.save_conversations([dataclasses.replace(conv, language=language)])


def _queue(
    uow: UnitOfWork,
    conversation_id: int,
    call_id: str,
    skills: tuple[str, ...],
    priority: str | None,
    reason: str,
) -> None:
    """The flow hands the call to people: skills and priority on the conversation, then the
    hand-off the router acts on (as a bot hand-off, so the inbox shows why)."""
    conv = uow.conversation(conversation_id, for_update=True)
    if conv is None or conv.status is not ConversationStatus.BOT:
        return
    changed = dataclasses.replace(
        conv,
        required_skills=tuple(dict.fromkeys([*conv.required_skills, *skills])),
        priority=Priority(priority) if priority else conv.priority,
    )
    if changed != conv:
        uow.save_conversations([changed])
    do_bot_turn(
        uow,
        BotTurn(
            conversation_id,
            f"call:{call_id}:queue",
            (),
            {"decision": "handoff", "reason": "phone_flow", "via": reason},
            None,
            handoff={"reason": "phone_flow", "mode": "call", "skills": list(skills)},
        ),
    )


def _voicemail_handoff(
    uow: UnitOfWork,
    conversation_id: int,
    call_id: str,
    caller: str,
    callback: bool,
    seconds: float,
    transcript: str,
) -> None:
    conv = uow.conversation(conversation_id, for_update=True)
    if conv is None:
        return
    uow.append_event(
        EventKind.CALL_STEP,
        conversation_id,
        {
            "call_id": call_id,
            "step": "voicemail_saved",
            "seconds": seconds,
            "transcript": transcript,
            "callback": callback,
            "phone": caller if callback else None,
        },
        AuthorKind.SYSTEM,
        None,
    )
    if conv.status is ConversationStatus.BOT:
        mode = "callback" if callback else "voicemail"
        do_bot_turn(
            uow,
            BotTurn(
                conversation_id,
                f"call:{call_id}:voicemail",
                (),
                {"decision": "handoff", "reason": "voicemail"},
                None,
                handoff={"reason": "voicemail", "mode": mode, "details": {"phone": caller}},
            ),
        )


# --- audio --------------------------------------------------------------------------------------


def _wav(pcm: bytes, sample_rate: int) -> bytes:
    """16-bit mono PCM in a WAV container (the stdlib's `wave`: no codec needed)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm)
    return out.getvalue()


def _beep(sample_rate: int) -> bytes:
    import numpy as np

    t = np.arange(int(sample_rate * BEEP_S)) / sample_rate
    return (np.sin(2 * np.pi * BEEP_HZ * t) * 8000).astype("<i2").tobytes()
