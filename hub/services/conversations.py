"""The conversation service: inbound messages, agent replies and lifecycle changes.

Every change happens inside one unit of work (one transaction) and appends the events that
describe it; the store publishes them on the bus after the commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hub import model, wire
from hub.errors import InvalidRequest, NotFound, TooLarge
from hub.model import (
    AuthorKind,
    Conversation,
    ConversationStatus,
    DeliveryState,
    Direction,
    EventKind,
    InboundMessage,
    Message,
    utcnow,
)
from hub.ports import ConversationFilter, Store, UnitOfWork

# Until the bot and the router land, a new conversation waits in the queue for any agent.
INITIAL_STATUS = ConversationStatus.QUEUED


@dataclass(frozen=True, slots=True)
class ConversationDetail:
    conversation: dict[str, Any]
    contact: dict[str, Any]
    messages: list[dict[str, Any]]
    other_conversations: list[dict[str, Any]]


def clean_text(text: str, max_chars: int) -> str:
    """Trimmed text or a clear error; shared by every entry point so limits agree."""
    text = text.strip()
    if not text:
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


def _save_change(
    uow: UnitOfWork,
    before: Conversation,
    after: Conversation,
    actor_kind: AuthorKind,
    actor_id: int | None,
) -> None:
    uow.save_conversation(after)
    if (before.status, before.assignee_id) != (after.status, after.assignee_id):
        _conversation_event(
            uow,
            EventKind.CONVERSATION_UPDATED,
            after,
            actor_kind,
            actor_id,
            changes={
                "status": [before.status.value, after.status.value],
                "assignee_id": [before.assignee_id, after.assignee_id],
            },
        )


def _message_event(uow: UnitOfWork, msg: Message, actor_kind: AuthorKind) -> None:
    uow.append_event(
        EventKind.MESSAGE_CREATED,
        msg.conversation_id,
        {"message": wire.message_json(msg)},
        actor_kind,
        msg.author_id,
    )


def _load(uow: UnitOfWork, conversation_id: int, for_update: bool = False) -> Conversation:
    conv = uow.conversation(conversation_id, for_update=for_update)
    if conv is None:
        raise NotFound(f"no conversation {conversation_id}", code="unknown_conversation")
    return conv


# --- units of work (run on a storage thread) ----------------------------------------------------


def do_open_conversation(
    uow: UnitOfWork,
    inbound_channel: str,
    inbox: str,
    address: str,
    display_name: str,
    language: str | None,
) -> Conversation:
    """Find or create the contact for (channel, address) and open a new conversation."""
    identity = model.Identity(inbound_channel, address)
    contact = uow.contact_by_identity(identity)
    if contact is None:
        contact = uow.create_contact(display_name, [identity], language)
        uow.append_event(EventKind.CONTACT_CREATED, None, {"contact": wire.contact_json(contact)})
    conv = uow.create_conversation(contact.id, inbound_channel, inbox, INITIAL_STATUS, language)
    _conversation_event(uow, EventKind.CONVERSATION_CREATED, conv, AuthorKind.SYSTEM, None)
    return conv


def do_receive(uow: UnitOfWork, msg: InboundMessage) -> Message:
    """Store one inbound message on its conversation; idempotent on channel_message_id."""
    if msg.channel_message_id:
        existing = uow.message_by_channel_id(msg.channel, msg.channel_message_id)
        if existing is not None:
            return existing
    now = utcnow()
    if msg.conversation_id is not None:
        conv = _load(uow, msg.conversation_id, for_update=True)
    else:
        contact = uow.contact_by_identity(msg.sender)
        latest = uow.latest_conversation(contact.id, msg.channel, msg.inbox) if contact else None
        conv = latest or do_open_conversation(
            uow,
            msg.channel,
            msg.inbox,
            msg.sender.address,
            msg.sender_name or msg.sender.address,
            msg.language,
        )
    stored = uow.add_message(
        conv.id,
        direction=Direction.INBOUND.value,
        author_kind=AuthorKind.CUSTOMER,
        text=msg.text,
        channel=msg.channel,
        channel_message_id=msg.channel_message_id,
        delivery_state=DeliveryState.DELIVERED,
        created_at=now,
    )
    _message_event(uow, stored, AuthorKind.CUSTOMER)
    _save_change(uow, conv, model.after_customer_message(conv, now), AuthorKind.CUSTOMER, None)
    return stored


def do_agent_reply(uow: UnitOfWork, conversation_id: int, agent_id: int, text: str) -> Message:
    conv = _load(uow, conversation_id, for_update=True)
    agent = uow.agent(agent_id)
    now = utcnow()
    after = conv
    if conv.status in (ConversationStatus.BOT, ConversationStatus.QUEUED) or (
        conv.status is ConversationStatus.ASSIGNED and conv.assignee_id is None
    ):
        after = model.assign(conv, agent_id, now)  # replying to a waiting customer takes it
    stored = uow.add_message(
        conv.id,
        direction=Direction.OUTBOUND.value,
        author_kind=AuthorKind.AGENT,
        author_id=agent_id,
        author_name=agent.name if agent else None,
        text=text,
        channel=conv.channel,
        created_at=now,
    )
    _message_event(uow, stored, AuthorKind.AGENT)
    _save_change(uow, conv, model.after_business_reply(after, now), AuthorKind.AGENT, agent_id)
    return stored


def do_change(
    uow: UnitOfWork,
    conversation_id: int,
    change: Callable[[Conversation], Conversation],
    actor_id: int,
) -> Conversation:
    conv = _load(uow, conversation_id, for_update=True)
    after = change(conv)
    _save_change(uow, conv, after, AuthorKind.AGENT, actor_id)
    return after


# --- the service (event loop side) ---------------------------------------------------------------


class ConversationService:
    """Entry point for channels (as their InboundSink) and for the agent API."""

    def __init__(
        self,
        store: Store,
        max_text_chars: int,
        on_outbound: Callable[[Message], None] | None = None,
    ):
        self.store = store
        self.max_text_chars = max_text_chars
        self.on_outbound = on_outbound  # the outbox, wired by the composition root

    async def receive(self, message: InboundMessage) -> Message:
        """InboundSink: durably store an inbound message (group-committed)."""
        text = clean_text(message.text, self.max_text_chars)
        message = dataclasses.replace(message, text=text)
        return await self.store.write_batched(lambda uow: do_receive(uow, message))

    async def open_conversation(
        self, channel: str, inbox: str, address: str, display_name: str, language: str | None
    ) -> Conversation:
        return await self.store.write(
            lambda uow: do_open_conversation(uow, channel, inbox, address, display_name, language)
        )

    async def reply(self, conversation_id: int, agent_id: int, text: str) -> Message:
        text = clean_text(text, self.max_text_chars)
        msg = await self.store.write(
            lambda uow: do_agent_reply(uow, conversation_id, agent_id, text)
        )
        if self.on_outbound is not None:
            self.on_outbound(msg)
        return msg

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
            return ConversationDetail(
                conversation=wire.conversation_json(
                    conv, contact, messages[-1] if messages else None
                ),
                contact=wire.contact_json(contact),
                messages=[wire.message_json(m) for m in messages],
                other_conversations=[
                    wire.conversation_json(c, contact, last.get(c.id)) for c in others
                ],
            )

        return await self.store.read(run)

    async def history(self, conversation_id: int) -> tuple[Conversation, list[Message]]:
        def run(uow: UnitOfWork) -> tuple[Conversation, list[Message]]:
            conv = _load(uow, conversation_id)
            return conv, uow.messages(conv.id)

        return await self.store.read(run)
