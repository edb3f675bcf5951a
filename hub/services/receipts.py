"""Read and delivery receipts: who has seen which messages (docs/webchat-protocol.md).

A receipt covers every message of one direction up to a message id, so a batch of messages
costs one write. Each message that changes gets its `message.delivery` event, carrying the
whole message as every other message event does; the inbox and the widget draw ticks from it.
"""

from __future__ import annotations

from hub import wire
from hub.errors import NotFound
from hub.model import AuthorKind, DeliveryState, Direction, EventKind, Message
from hub.ports import NewEvent, Store, UnitOfWork


def do_mark_delivery(
    uow: UnitOfWork,
    conversation_id: int,
    direction: Direction,
    up_to: int,
    state: DeliveryState,
    actor: tuple[AuthorKind, int | None],
) -> list[Message]:
    """Move the conversation's `direction` messages up to `up_to` on to `state`."""
    changed = uow.mark_delivery(conversation_id, direction, up_to, state)
    kind, actor_id = actor
    uow.append_events(
        [
            NewEvent(
                EventKind.MESSAGE_DELIVERY,
                conversation_id,
                {"message": wire.message_json(m)},
                kind,
                actor_id,
            )
            for m in changed
        ]
    )
    return changed


async def customer_saw(
    store: Store, conversation_id: int, up_to: int, state: DeliveryState
) -> list[Message]:
    """The customer's client got (`delivered`) or showed (`read`) the replies up to `up_to`."""
    return await store.write(
        lambda uow: do_mark_delivery(
            uow,
            conversation_id,
            Direction.OUTBOUND,
            up_to,
            state,
            (AuthorKind.CUSTOMER, None),
        )
    )


async def agent_read(store: Store, conversation_id: int, up_to: int, agent_id: int) -> None:
    """An agent read the customer's messages up to `up_to` (the widget then shows "Seen")."""

    def run(uow: UnitOfWork) -> None:
        if uow.conversation(conversation_id) is None:
            raise NotFound(f"no conversation {conversation_id}", code="unknown_conversation")
        do_mark_delivery(
            uow,
            conversation_id,
            Direction.INBOUND,
            up_to,
            DeliveryState.READ,
            (AuthorKind.AGENT, agent_id),
        )

    await store.write(run)
