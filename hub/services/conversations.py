"""The conversation service: inbound messages, agent replies and lifecycle changes.

Every change happens inside one unit of work (one transaction) and appends the events that
describe it; the store publishes them on the bus after the commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hub import model, wire
from hub.errors import InvalidRequest, NotFound, TooLarge
from hub.model import (
    Attachment,
    AuthorKind,
    Choice,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    EventKind,
    InboundMessage,
    Message,
    MessageFormat,
    utcnow,
)
from hub.ports import ConversationFilter, NewEvent, NewMessage, Store, UnitOfWork

# Until the router lands, a new conversation waits in the queue for any agent; on an inbox
# where the front-line bot is on it starts with the bot instead (ConversationService.bot_first).
INITIAL_STATUS = ConversationStatus.QUEUED


@dataclass(frozen=True, slots=True)
class Inbound:
    """An inbound message as the receiving unit of work takes it: with the status a
    conversation it opens starts in (decided by the service, which knows the inboxes)."""

    message: InboundMessage
    opens_as: ConversationStatus = INITIAL_STATUS


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    conversation: dict[str, Any]
    contact: dict[str, Any]
    messages: list[dict[str, Any]]
    other_conversations: list[dict[str, Any]]
    handoff: dict[str, Any] | None  # the bot's latest hand-off: reason, tags, details
    call: dict[str, Any] | None = None  # the latest phone call: live or how it ended


def clean_text(text: str, max_chars: int, *, allow_empty: bool = False) -> str:
    """Trimmed text or a clear error; shared by every entry point so limits agree.

    `allow_empty` is for messages that carry attachments (a photo without a caption)."""
    text = text.strip()
    if not text and not allow_empty:
        raise InvalidRequest("the message is empty", code="empty_text")
    if len(text) > max_chars:
        raise TooLarge(
            f"the message has {len(text)} characters; the limit is {max_chars}",
            code="text_too_long",
        )
    return text


def _conversation_event(
    uow: UnitOfWork,
    kind: EventKind,
    conv: Conversation,
    actor_kind: AuthorKind,
    actor_id: int | None,
    **extra: Any,
) -> None:
    contact = uow.contact(conv.contact_id)
    payload = {"conversation": wire.conversation_json(conv, contact), **extra}
    uow.append_event(kind, conv.id, payload, actor_kind, actor_id)


def _save_changes(
    uow: UnitOfWork,
    before: dict[int, Conversation],
    after: list[Conversation],
    actor_kind: AuthorKind,
    actor_id: int | None,
) -> None:
    """Save conversations; a change of status or assignee is an event of its own."""
    uow.save_conversations(after)
    for conv in after:
        old = before[conv.id]
        if (old.status, old.assignee_id) != (conv.status, conv.assignee_id):
            _conversation_event(
                uow,
                EventKind.CONVERSATION_UPDATED,
                conv,
                actor_kind,
                actor_id,
                changes={
                    "status": [old.status.value, conv.status.value],
                    "assignee_id": [old.assignee_id, conv.assignee_id],
                },
            )


def _message_event(msg: Message) -> NewEvent:
    return NewEvent(
        EventKind.MESSAGE_CREATED,
        msg.conversation_id,
        {"message": wire.message_json(msg)},
        msg.author_kind,
        msg.author_id,
    )


def _unknown_conversation(conversation_id: int) -> NotFound:
    return NotFound(f"no conversation {conversation_id}", code="unknown_conversation")


def _load(uow: UnitOfWork, conversation_id: int, for_update: bool = False) -> Conversation:
    conv = uow.conversation(conversation_id, for_update=for_update)
    if conv is None:
        raise _unknown_conversation(conversation_id)
    return conv


# --- units of work (run on a storage thread) ----------------------------------------------------


def do_open_conversation(
    uow: UnitOfWork,
    inbound_channel: str,
    inbox: str,
    address: str,
    display_name: str,
    language: str | None,
    status: ConversationStatus = INITIAL_STATUS,
) -> Conversation:
    """Find or create the contact for (channel, address) and open a new conversation."""
    identity = model.Identity(inbound_channel, address)
    contact = uow.contact_by_identity(identity)
    if contact is None:
        contact = uow.create_contact(display_name, [identity], language)
        uow.append_event(EventKind.CONTACT_CREATED, None, {"contact": wire.contact_json(contact)})
    conv = uow.create_conversation(contact.id, inbound_channel, inbox, status, language)
    _conversation_event(uow, EventKind.CONVERSATION_CREATED, conv, AuthorKind.SYSTEM, None)
    return conv


def do_receive_many(uow: UnitOfWork, batch: list[Inbound]) -> list[Message | Exception]:
    """Store inbound messages on their conversations, one result per message in order.

    A whole group-committed batch takes a handful of statements. Idempotent on (channel,
    channel message id), within the batch too: a resend gets the stored message back. A
    message for an unknown conversation gets its error without holding up the others.
    """
    now = utcnow()
    messages = [item.message for item in batch]
    keys = {(m.channel, m.channel_message_id) for m in messages if m.channel_message_id}
    known: dict[tuple[str, str], Message | int] = dict(uow.messages_by_channel_ids(keys))
    convs = uow.conversations_by_id(
        {m.conversation_id for m in messages if m.conversation_id is not None}, for_update=True
    )
    before = dict(convs)
    slots: list[Message | Exception | int] = []  # an int points into `new`
    new: list[NewMessage] = []
    automated: dict[int, str] = {}  # index into `new` -> why it is machine-made
    for item in batch:
        msg = item.message
        key = (msg.channel, msg.channel_message_id) if msg.channel_message_id else None
        if key is not None and key in known:
            slots.append(known[key])
            continue
        if msg.conversation_id is None:
            conv = _conversation_for_sender(uow, msg, item.opens_as)
            before.setdefault(conv.id, conv)
            convs.setdefault(conv.id, conv)
        elif (found := convs.get(msg.conversation_id)) is None:
            slots.append(_unknown_conversation(msg.conversation_id))
            continue
        else:
            conv = found
        if key is not None:
            known[key] = len(new)
        if msg.automated:
            automated[len(new)] = msg.automated
        slots.append(len(new))
        new.append(
            NewMessage(
                conv.id,
                Direction.INBOUND.value,
                AuthorKind.CUSTOMER,
                msg.text,
                msg.channel,
                now,
                channel_message_id=msg.channel_message_id,
                delivery_state=DeliveryState.DELIVERED,
                attachments=msg.attachments,
            )
        )
    stored = uow.add_messages(new)
    # Once per conversation: a second message at the same instant changes nothing more.
    touched = {
        conversation_id: model.after_customer_message(convs[conversation_id], now)
        for conversation_id in dict.fromkeys(m.conversation_id for m in stored)
    }
    uow.append_events([_message_event(m) for m in stored])
    uow.append_events([_not_for_the_bot(stored[i], why) for i, why in automated.items()])
    _save_changes(uow, before, list(touched.values()), AuthorKind.CUSTOMER, None)
    return [stored[s] if isinstance(s, int) else s for s in slots]


def _not_for_the_bot(msg: Message, why: str) -> NewEvent:
    """The bot's turn on a machine-made message, taken at once as "not answered": the bot
    runner, live or resuming after a restart, finds the trigger answered and stays silent."""
    return NewEvent(
        EventKind.BOT_DECISION,
        msg.conversation_id,
        {
            "key": f"message:{msg.id}",
            "decision": "ignored",
            "reason": "automated",
            "detail": why,
            "message_ids": [],
        },
        AuthorKind.BOT,
    )


def _conversation_for_sender(
    uow: UnitOfWork, msg: InboundMessage, status: ConversationStatus
) -> Conversation:
    """The sender's latest conversation on this channel and inbox, or a new one."""
    contact = None if msg.new_conversation else uow.contact_by_identity(msg.sender)
    latest = uow.latest_conversation(contact.id, msg.channel, msg.inbox) if contact else None
    return latest or do_open_conversation(
        uow,
        msg.channel,
        msg.inbox,
        msg.sender.address,
        msg.sender_name or msg.sender.address,
        msg.language,
        status,
    )


def latest_handoff(events: Sequence[model.Event]) -> dict[str, Any] | None:
    """The newest hand-off the bot recorded on a conversation (see `do_bot_turn`), as JSON."""
    for ev in reversed(events):
        handoff = ev.payload.get("handoff")
        if ev.kind is EventKind.CONVERSATION_UPDATED and isinstance(handoff, dict):
            return wire.dump(wire.handoff_out(handoff, ev.created_at))
    return None


def latest_call(events: Sequence[model.Event]) -> dict[str, Any] | None:
    """The conversation's newest phone call (`call.started` and its `call.ended`), as JSON."""
    ended: dict[str, tuple[Mapping[str, Any], datetime]] = {}
    for ev in reversed(events):
        call_id = str(ev.payload.get("call_id") or "")
        if ev.kind is EventKind.CALL_ENDED:
            ended.setdefault(call_id, (ev.payload, ev.created_at))
        elif ev.kind is EventKind.CALL_STARTED:
            return wire.dump(wire.call_out(ev.payload, ev.created_at, ended.get(call_id)))
    return None


def do_agent_reply(
    uow: UnitOfWork,
    conversation_id: int,
    agent_id: int,
    text: str,
    attachments: tuple[Attachment, ...] = (),
) -> Message:
    conv = _load(uow, conversation_id, for_update=True)
    agent = uow.agent(agent_id)
    now = utcnow()
    after = conv
    if conv.status in (ConversationStatus.BOT, ConversationStatus.QUEUED) or (
        conv.status is ConversationStatus.ASSIGNED and conv.assignee_id is None
    ):
        after = model.assign(conv, agent_id, now)  # replying to a waiting customer takes it
    [stored] = uow.add_messages(
        [
            NewMessage(
                conv.id,
                Direction.OUTBOUND.value,
                AuthorKind.AGENT,
                text,
                conv.channel,
                now,
                author_id=agent_id,
                author_name=agent.name if agent else None,
                attachments=attachments,
                format=MessageFormat.MARKDOWN,
            )
        ]
    )
    uow.append_events([_message_event(stored)])
    _save_changes(
        uow, {conv.id: conv}, [model.after_business_reply(after, now)], AuthorKind.AGENT, agent_id
    )
    return stored


@dataclass(frozen=True, slots=True)
class BotReply:
    """One bot message; `choices` ({"title", "payload"}) become buttons where the channel has
    them, and the text always lists them too."""

    text: str
    choices: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BotTurn:
    """What the bot did with one trigger (a customer message, or a resolution for CSAT)."""

    conversation_id: int
    key: str  # "message:ID" or "resolved:TIME": a trigger is answered once, even on a retry
    replies: tuple[BotReply, ...]
    decision: dict[str, Any]  # which article, which score, why: for the event log
    state: dict[str, Any] | None  # the bot's slots after the turn (None: not the bot's turn)
    handoff: dict[str, Any] | None = None  # hand the conversation to people, with this reason
    csat: int | None = None
    needs_bot_status: bool = True  # drop the turn if a person took the conversation meanwhile
    # The router's notice to a waiting customer (overflow): dropped unless the conversation
    # is still queued; its hand-off marks the conversation for agents without moving it, and
    # it is not a first response.
    queued_notice: bool = False


def bot_turn_answered(uow: UnitOfWork, conversation_id: int, key: str) -> bool:
    return any(
        ev.kind is EventKind.BOT_DECISION and ev.payload.get("key") == key
        for ev in uow.events(conversation_id)
    )


def do_bot_turn(uow: UnitOfWork, turn: BotTurn) -> list[Message]:
    """Store the bot's replies, its decision and state, and a hand-off or a CSAT rating.

    Returns the stored replies for the outbox; none when the trigger was already answered
    (a resumed turn) or a person took the conversation while the bot was thinking.
    """
    conv = _load(uow, turn.conversation_id, for_update=True)
    if bot_turn_answered(uow, conv.id, turn.key):
        return []
    if turn.needs_bot_status and conv.status is not ConversationStatus.BOT:
        return []
    if turn.queued_notice and conv.status is not ConversationStatus.QUEUED:
        return []
    now = utcnow()
    stored = uow.add_messages(
        [
            NewMessage(
                conv.id,
                Direction.OUTBOUND.value,
                AuthorKind.BOT,
                r.text,
                conv.channel,
                now,
                choices=tuple(Choice(c["title"], c["payload"]) for c in r.choices),
                format=MessageFormat.MARKDOWN,
            )
            for r in turn.replies
        ]
    )
    uow.append_events([_message_event(m) for m in stored])
    uow.append_event(
        EventKind.BOT_DECISION,
        conv.id,
        {
            "key": turn.key,
            **turn.decision,
            "message_ids": [m.id for m in stored],
            **({"state": turn.state} if turn.state is not None else {}),
        },
        AuthorKind.BOT,
    )
    after = conv
    if stored:
        after = (
            dataclasses.replace(conv, last_message_at=now)
            if turn.queued_notice
            else model.after_business_reply(conv, now)
        )
    extra: dict[str, Any] = {}
    if turn.handoff is not None and (after.status is ConversationStatus.BOT or turn.queued_notice):
        if after.status is ConversationStatus.BOT:
            after = model.transition(after, ConversationStatus.QUEUED, now)
        extra["handoff"] = turn.handoff
    if turn.csat is not None:
        after = dataclasses.replace(after, csat=turn.csat)
        extra["csat"] = [conv.csat, turn.csat]
        if after.status not in (ConversationStatus.RESOLVED, ConversationStatus.CLOSED):
            # The rating itself reopened the conversation (any customer message does).
            after = model.transition(after, ConversationStatus.RESOLVED, now)
    uow.save_conversations([after])
    if extra or (conv.status, conv.assignee_id) != (after.status, after.assignee_id):
        _conversation_event(
            uow,
            EventKind.CONVERSATION_UPDATED,
            after,
            AuthorKind.BOT,
            None,
            changes={
                "status": [conv.status.value, after.status.value],
                "assignee_id": [conv.assignee_id, after.assignee_id],
            },
            **extra,
        )
    return stored


def do_change(
    uow: UnitOfWork,
    conversation_id: int,
    change: Callable[[Conversation], Conversation],
    actor_id: int,
) -> Conversation:
    conv = _load(uow, conversation_id, for_update=True)
    after = change(conv)
    _save_changes(uow, {conv.id: conv}, [after], AuthorKind.AGENT, actor_id)
    return after


# --- the service (event loop side) ---------------------------------------------------------------


class ConversationService:
    """Entry point for channels (as their InboundSink) and for the agent API."""

    def __init__(
        self,
        store: Store,
        max_text_chars: int,
        on_outbound: Callable[[Message], None] | None = None,
        bot_first: Callable[[str], bool] | None = None,
    ):
        self.store = store
        self.max_text_chars = max_text_chars
        self.on_outbound = on_outbound  # the outbox, wired by the composition root
        # Which inboxes' new conversations start with the front-line bot (inbox configuration).
        self.bot_first = bot_first or (lambda _inbox: False)

    def opening_status(self, inbox: str) -> ConversationStatus:
        """InboundSink: the status a new conversation on `inbox` starts in."""
        return ConversationStatus.BOT if self.bot_first(inbox) else INITIAL_STATUS

    async def receive(self, message: InboundMessage) -> Message:
        """InboundSink: durably store an inbound message (group-committed)."""
        text = clean_text(message.text, self.max_text_chars, allow_empty=bool(message.attachments))
        if text != message.text:
            message = dataclasses.replace(message, text=text)
        # Machine-made messages are for people to look at: the bot does not open with them.
        opens_as = INITIAL_STATUS if message.automated else self.opening_status(message.inbox)
        item = Inbound(message, opens_as)
        return await self.store.write_batched(do_receive_many, item)

    async def open_conversation(
        self, channel: str, inbox: str, address: str, display_name: str, language: str | None
    ) -> Conversation:
        status = self.opening_status(inbox)
        return await self.store.write(
            lambda uow: do_open_conversation(
                uow, channel, inbox, address, display_name, language, status
            )
        )

    async def reply(
        self,
        conversation_id: int,
        agent_id: int,
        text: str,
        attachments: tuple[Attachment, ...] = (),
    ) -> Message:
        text = clean_text(text, self.max_text_chars, allow_empty=bool(attachments))
        msg = await self.store.write(
            lambda uow: do_agent_reply(uow, conversation_id, agent_id, text, attachments)
        )
        if self.on_outbound is not None:
            self.on_outbound(msg)
        return msg

    async def bot_turn(self, turn: BotTurn) -> list[Message]:
        """Store a bot turn and send its replies the way agent replies go out."""
        stored = await self.store.write(lambda uow: do_bot_turn(uow, turn))
        if self.on_outbound is not None:
            for msg in stored:
                self.on_outbound(msg)
        return stored

    async def assign(self, conversation_id: int, agent_id: int, actor_id: int) -> dict[str, Any]:
        """Give the conversation to `agent_id`; returns its summary."""
        if await self.store.read(lambda uow: uow.agent(agent_id)) is None:
            raise NotFound(f"no agent {agent_id}", code="unknown_agent")
        return await self._change(
            conversation_id, lambda c: model.assign(c, agent_id, utcnow()), actor_id
        )

    async def resolve(self, conversation_id: int, actor_id: int) -> dict[str, Any]:
        return await self._change(
            conversation_id,
            lambda c: model.transition(c, ConversationStatus.RESOLVED, utcnow()),
            actor_id,
        )

    async def reopen(self, conversation_id: int, actor_id: int) -> dict[str, Any]:
        return await self._change(conversation_id, lambda c: model.reopen(c, utcnow()), actor_id)

    async def _change(
        self, conversation_id: int, change: Callable[[Conversation], Conversation], actor_id: int
    ) -> dict[str, Any]:
        def run(uow: UnitOfWork) -> dict[str, Any]:
            after = do_change(uow, conversation_id, change, actor_id)
            last = uow.last_messages([after.id]).get(after.id)
            return wire.conversation_json(after, uow.contact(after.contact_id), last)

        return await self.store.write(run)

    # --- reads --------------------------------------------------------------------------------

    async def summaries(self, flt: ConversationFilter) -> list[dict[str, Any]]:
        def run(uow: UnitOfWork) -> list[dict[str, Any]]:
            convs = uow.conversations(flt)
            contacts = uow.contacts([c.contact_id for c in convs])
            last = uow.last_messages([c.id for c in convs])
            return [
                wire.conversation_json(c, contacts.get(c.contact_id), last.get(c.id)) for c in convs
            ]

        return await self.store.read(run)

    async def detail(self, conversation_id: int) -> ConversationDetail:
        def run(uow: UnitOfWork) -> ConversationDetail:
            conv = _load(uow, conversation_id)
            contact = uow.contact(conv.contact_id)
            assert contact is not None
            messages = uow.messages(conv.id)
            others = [
                c
                for c in uow.conversations(
                    ConversationFilter(contact_id=contact.id, include_empty=False, limit=20)
                )
                if c.id != conv.id
            ]
            last = uow.last_messages([c.id for c in others])
            events = uow.events(conv.id)
            return ConversationDetail(
                conversation=wire.conversation_json(
                    conv, contact, messages[-1] if messages else None
                ),
                contact=wire.contact_json(contact),
                messages=[wire.message_json(m) for m in messages],
                other_conversations=[
                    wire.conversation_json(c, contact, last.get(c.id)) for c in others
                ],
                handoff=latest_handoff(events),
                call=latest_call(events),
            )

        return await self.store.read(run)

    async def history(self, conversation_id: int) -> tuple[Conversation, list[Message]]:
        def run(uow: UnitOfWork) -> tuple[Conversation, list[Message]]:
            conv = _load(uow, conversation_id)
            return conv, uow.messages(conv.id)

        return await self.store.read(run)
