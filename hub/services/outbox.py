"""Durable outbox: every outbound message is stored as `queued` before any send, sent through
its channel, and retried like a mail server retries (hub.services.retry: backoff capped per
channel, for the channel's lifetime) until it goes out or fails with a reason the agent reads
(`delivery_error`). A channel's permanent refusal (SMTP 5xx, a Telegram user who blocked the
bot) fails at once.

The schedule of a message that failed an attempt is stored (`outbox_schedule`), so a restart
resumes its backoff where it stood; messages whose lifetime ran out while the hub was down
fail with that reason. A first attempt that succeeds writes nothing beyond today's one update
(the web chat hot path). An agent can resend a failed message (`resend`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from hub import wire
from hub.errors import InvalidTransition, NotFound
from hub.model import AuthorKind, DeliveryState, Direction, EventKind, Message, utcnow
from hub.ports import (
    Channel,
    ChannelSendError,
    PendingSend,
    SendResult,
    SendSchedule,
    Store,
    UnitOfWork,
)
from hub.services.retry import RetryPolicy, duration_text

log = logging.getLogger(__name__)

RESUME_PAGE = 500  # queued messages read per query on start-up
IDLE_WAKE_S = 3600.0  # the timer's longest sleep when nothing is scheduled


def _pending_page(uow: UnitOfWork, after: int) -> list[PendingSend]:
    return uow.pending_sends(after, RESUME_PAGE)


def _delivery_event(
    uow: UnitOfWork, msg: Message, detail: str | None, actor: AuthorKind, actor_id: int | None
) -> None:
    payload: dict[str, Any] = {"message": wire.message_json(msg)}
    if detail:
        payload["detail"] = detail
    uow.append_event(EventKind.MESSAGE_DELIVERY, msg.conversation_id, payload, actor, actor_id)


def do_set_delivery(
    uow: UnitOfWork, message_id: int, result: SendResult, *, had_schedule: bool = False
) -> None:
    """Record a send's outcome (`sent`, `delivered`); forget the retry schedule it had."""
    if had_schedule:
        uow.save_send_schedule(message_id, None)
    msg = uow.set_delivery_state(message_id, result.state, result.channel_message_id)
    if msg is not None:
        _delivery_event(uow, msg, result.detail, AuthorKind.SYSTEM, None)


def do_fail_delivery(uow: UnitOfWork, message_id: int, reason: str) -> Message | None:
    """The message is `failed` for good, with `reason` for the agent (and in the event)."""
    msg = uow.fail_delivery(message_id, reason)
    if msg is not None:
        _delivery_event(uow, msg, reason, AuthorKind.SYSTEM, None)
    return msg


def do_resend(
    uow: UnitOfWork, conversation_id: int, message_id: int, agent_id: int, now: datetime
) -> Message:
    """A failed outbound message of the conversation is queued again, its lifetime from now."""
    found = uow.message(message_id)
    if found is None or found.conversation_id != conversation_id:
        raise NotFound(
            f"conversation {conversation_id} has no message {message_id}", code="unknown_message"
        )
    if found.direction is not Direction.OUTBOUND or found.delivery_state is not (
        DeliveryState.FAILED
    ):
        raise InvalidTransition(
            f"message {message_id} is {found.delivery_state.value}, not failed: only a failed"
            " outbound message can be resent",
            code="not_failed",
        )
    msg = uow.requeue_delivery(message_id, now)
    assert msg is not None
    _delivery_event(uow, msg, "resent", AuthorKind.AGENT, agent_id)
    return msg


class Outbox:
    """Sends stored outbound messages and keeps retrying them per `policy(channel)`.

    `clock` gives aware UTC times (injected by tests); the timer task starts whatever is due
    by it, and `start_due` does the same on demand.
    """

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        policy: Callable[[str], RetryPolicy],
        *,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.store = store
        self.channels = channels
        self.policy = policy
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: set[int] = set()  # message ids being sent or waiting for their retry
        self._due: list[tuple[datetime, int, PendingSend]] = []  # a heap by next attempt
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    def submit(self, message: Message) -> None:
        """Start delivering a stored outbound message (returns at once)."""
        self._begin(PendingSend(message))

    async def resend(self, conversation_id: int, message_id: int, agent_id: int) -> Message:
        """An agent sends a failed message again: `queued` now, with a fresh lifetime."""
        now = self.clock()
        msg = await self.store.write(
            lambda uow: do_resend(uow, conversation_id, message_id, agent_id, now)
        )
        self._begin(PendingSend(msg, SendSchedule(0, now, now)))
        return msg

    async def resume(self) -> int:
        """Take up what a previous process stored but did not get out, each where its backoff
        stood; fail those whose lifetime ran out meanwhile. Returns how many it took up."""
        count, after = 0, 0
        while batch := await self.store.read(functools.partial(_pending_page, after=after)):
            for pending in batch:
                count += await self._take_up(pending)
            after = batch[-1].message.id
        return count

    def start_due(self) -> int:
        """Start the retries that are due by the clock; returns how many."""
        now = self.clock()
        started = 0
        while self._due and self._due[0][0] <= now:
            _, _, pending = heapq.heappop(self._due)
            self._spawn(pending)
            started += 1
        return started

    def next_due(self) -> datetime | None:
        """When the earliest waiting retry is due (None: none waits)."""
        return self._due[0][0] if self._due else None

    async def drain(self) -> None:
        """Wait for the sends in flight now (not for retries still waiting)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        # Whatever is in flight or waiting stays `queued` in storage: resumed on the next start.
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
        self._due.clear()
        self._active.clear()

    # --- scheduling ---------------------------------------------------------------------------

    def _begin(self, pending: PendingSend) -> None:
        if pending.message.id in self._active:
            return
        self._active.add(pending.message.id)
        self._spawn(pending)

    def _spawn(self, pending: PendingSend) -> None:
        task = asyncio.create_task(
            self._attempt(pending), name=f"omnihub-send-{pending.message.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, pending: PendingSend) -> None:
        assert pending.schedule is not None
        heapq.heappush(self._due, (pending.schedule.next_attempt_at, pending.message.id, pending))
        self._wake.set()
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._timers(), name="omnihub-outbox-timer")

    async def _timers(self) -> None:
        while True:
            self.start_due()
            self._wake.clear()
            delay = IDLE_WAKE_S
            if self._due:
                delay = min(delay, max(0.0, (self._due[0][0] - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def _take_up(self, pending: PendingSend) -> bool:
        message, schedule = pending.message, pending.schedule
        if message.id in self._active:
            return False
        policy = self.policy(message.channel)
        queued_at = schedule.queued_at if schedule else message.created_at
        now = self.clock()
        if now >= policy.deadline(queued_at):
            last = schedule.last_error if schedule and schedule.last_error else None
            await self._fail(
                message,
                f"not sent within {duration_text(policy.lifetime)}: the time ran out while the"
                f" hub was stopped; last error: {last or 'none, it was never tried'}",
            )
            return False
        self._active.add(message.id)
        if schedule is None or schedule.next_attempt_at <= now:
            self._spawn(pending)
        else:
            self._later(pending)
        return True

    # --- one attempt --------------------------------------------------------------------------

    async def _attempt(self, pending: PendingSend) -> None:
        message = pending.message
        waiting = False
        try:
            channel = self.channels.get(message.channel)
            if channel is None:
                await self._fail(message, f"the {message.channel} channel is not enabled")
                return
            conversation = await self.store.read(
                lambda uow: uow.conversation(message.conversation_id)
            )
            if conversation is None:
                return
            try:
                result = await channel.send(conversation, message)
            except ChannelSendError as exc:
                waiting = await self._failed_attempt(
                    pending, str(exc), exc.retryable, exc.retry_after
                )
                return
            except Exception as exc:  # an adapter's bug: kept and retried, with its traceback
                log.exception("sending message %d raised", message.id)
                waiting = await self._failed_attempt(pending, f"internal error: {exc!r}")
                return
            if result.state is DeliveryState.FAILED:
                await self._fail(message, result.detail or f"refused by {message.channel}")
            elif result.state is not DeliveryState.QUEUED:
                had = pending.schedule is not None
                await self.store.write(
                    lambda uow: do_set_delivery(uow, message.id, result, had_schedule=had)
                )
        finally:
            if not waiting:
                self._active.discard(message.id)

    async def _failed_attempt(
        self,
        pending: PendingSend,
        reason: str,
        retryable: bool = True,
        retry_after: float | None = None,
    ) -> bool:
        """Schedule the next attempt (True) or fail the message for good (False)."""
        message, schedule = pending.message, pending.schedule
        if not retryable:
            await self._fail(message, reason)
            return False
        attempts = (schedule.attempts if schedule else 0) + 1
        queued_at = schedule.queued_at if schedule else message.created_at
        policy = self.policy(message.channel)
        now = self.clock()
        at = policy.next_attempt(attempts, queued_at, now, retry_after)
        if at is None:
            await self._fail(
                message,
                f"gave up after {attempts} attempts in {duration_text(policy.lifetime)}: {reason}",
            )
            return False
        later = SendSchedule(attempts, at, queued_at, reason)
        await self.store.write(lambda uow: uow.save_send_schedule(message.id, later))
        log.warning(
            "sending message %d (conversation %d, %s) failed, attempt %d: %s; next attempt in"
            " %.3g s",
            message.id,
            message.conversation_id,
            message.channel,
            attempts,
            reason,
            (at - now).total_seconds(),
        )
        self._later(PendingSend(message, later))
        return True

    async def _fail(self, message: Message, reason: str) -> None:
        await self.store.write(lambda uow: do_fail_delivery(uow, message.id, reason))
        log.error(
            "message %d (conversation %d, %s) not delivered: %s",
            message.id,
            message.conversation_id,
            message.channel,
            reason,
        )
