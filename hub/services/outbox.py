"""Durable outbox: every outbound message is stored as `queued` before any send, sent through
its channel, retried with backoff on retryable failures and marked `failed` (an event the
agent sees) when it finally cannot go out. On start-up, messages still `queued` are sent again,
so a crash between storing and sending loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from hub import wire
from hub.model import AuthorKind, DeliveryState, EventKind, Message
from hub.ports import Channel, ChannelSendError, SendResult, Store, UnitOfWork

log = logging.getLogger(__name__)


def do_set_delivery(uow: UnitOfWork, message_id: int, result: SendResult) -> None:
    msg = uow.set_delivery_state(message_id, result.state, result.channel_message_id)
    if msg is None:
        return
    payload: dict[str, Any] = {"message": wire.message_json(msg)}
    if result.detail:
        payload["detail"] = result.detail
    uow.append_event(EventKind.MESSAGE_DELIVERY, msg.conversation_id, payload, AuthorKind.SYSTEM)


class Outbox:
    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        *,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
    ):
        self.store = store
        self.channels = channels
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, message: Message) -> None:
        """Start delivering a stored outbound message (returns at once)."""
        task = asyncio.create_task(self._deliver(message), name=f"omnihub-send-{message.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def resume(self) -> int:
        """Re-send what a previous process stored but did not get out."""
        pending = await self.store.read(lambda uow: uow.undelivered_outbound())
        for msg in pending:
            self.submit(msg)
        return len(pending)

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()  # still `queued` in storage: resumed on the next start
        await self.drain()

    async def _deliver(self, message: Message) -> None:
        channel = self.channels.get(message.channel)
        if channel is None:
            await self._record(
                message, SendResult(DeliveryState.FAILED, detail="channel not enabled")
            )
            return
        conversation = await self.store.read(lambda uow: uow.conversation(message.conversation_id))
        if conversation is None:
            return
        delay = self.base_delay
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await channel.send(conversation, message)
            except ChannelSendError as exc:
                if not exc.retryable or attempt == self.max_attempts:
                    await self._record(message, SendResult(DeliveryState.FAILED, detail=str(exc)))
                    return
                wait = delay if exc.retry_after is None else min(exc.retry_after, self.max_delay)
                log.warning(
                    "send of message %d failed (%s); retry %d in %.1f s",
                    message.id,
                    exc,
                    attempt,
                    wait,
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, self.max_delay)
                continue
            await self._record(message, result)
            return

    async def _record(self, message: Message, result: SendResult) -> None:
        if result.state is DeliveryState.QUEUED:
            return
        await self.store.write(lambda uow: do_set_delivery(uow, message.id, result))
