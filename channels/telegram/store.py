"""The Telegram channel's units of work (they run on a storage thread, one transaction each)."""

from __future__ import annotations

from channels.telegram.inbound import CHANNEL
from hub import wire
from hub.errors import NotFound
from hub.model import Choice, Contact, Conversation, EventKind, Identity
from hub.ports import UnitOfWork

CHOICE_LOOKBACK = 500  # messages searched for the one a pressed button belongs to


def telegram_chat(uow: UnitOfWork, conversation: Conversation) -> int | None:
    """The Telegram chat a conversation's replies go to: its contact's Telegram address (the
    user in a private chat, the group in a group chat)."""
    contact = uow.contact(conversation.contact_id)
    if contact is None:
        return None
    for identity in contact.identities:
        if identity.channel == CHANNEL and identity.address.lstrip("-").isdigit():
            return int(identity.address)
    return None


def choice_for(
    uow: UnitOfWork, conversation_id: int, message_id: int, index: int, sender: Identity
) -> tuple[int, Choice] | None:
    """The choice a pressed button stands for, if the message offered it on a conversation of
    the contact pressing it; None for a stale or forged button."""
    conversation = uow.conversation(conversation_id)
    contact = uow.contact_by_identity(sender)
    if conversation is None or contact is None or conversation.contact_id != contact.id:
        return None
    for message in uow.messages(conversation_id, limit=CHOICE_LOOKBACK):
        if message.id == message_id:
            if 0 <= index < len(message.choices):
                return conversation_id, message.choices[index]
            return None
    return None


def link_identity(uow: UnitOfWork, contact_id: int, identity: Identity, inbox: str) -> Contact:
    """Join a Telegram address to an existing contact (a /start deep link); HubError
    `identity_taken` when the address already belongs to another contact."""
    if uow.contact(contact_id) is None:
        raise NotFound(f"no contact {contact_id}", code="unknown_contact")
    contact = uow.add_identity(contact_id, identity)
    uow.append_event(
        EventKind.IDENTITY_LINKED,
        None,
        {
            "contact": wire.contact_json(contact),
            "identity": {"channel": identity.channel, "address": identity.address},
            "inbox": inbox,
            "via": "telegram_deep_link",
        },
    )
    return contact


def mark_unreachable(
    uow: UnitOfWork, conversation: Conversation, address: str, reason: str
) -> None:
    """Record that Telegram refuses to deliver to this chat (the user blocked the bot): an
    event on the conversation, so the agent sees why the reply did not arrive."""
    uow.append_event(
        EventKind.IDENTITY_UNREACHABLE,
        conversation.id,
        {
            "contact_id": conversation.contact_id,
            "identity": {"channel": CHANNEL, "address": address},
            "reason": reason,
        },
    )
