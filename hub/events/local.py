"""In-process event bus: the default for a single hub process."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable

from hub.ports import BusEnvelope, BusHandler

log = logging.getLogger(__name__)


class LocalBus:
    """Delivers every published envelope to every handler, in publish order.

    Handlers run on a dispatcher task, so `publish` never blocks and a slow subscriber
    never slows the publisher.
    """

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id or uuid.uuid4().hex[:12]
        self._handlers: list[BusHandler] = []
        self._queue: asyncio.Queue[BusEnvelope | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def publish(self, envelope: BusEnvelope) -> None:
        self._queue.put_nowait(envelope)

    def subscribe(self, handler: BusHandler) -> Callable[[], None]:
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._dispatch(), name="omnihub-bus-dispatch")

    async def close(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None

    async def deliver(self, envelope: BusEnvelope) -> None:
        """Hand one envelope to every handler; a failing handler is logged, others still run."""
        for handler in list(self._handlers):
            try:
                result = handler(envelope)
                if result is not None and inspect.isawaitable(result):  # most handlers are sync
                    await result
            except Exception:
                log.exception("event handler %r failed on %s", handler, envelope["kind"])

    async def _dispatch(self) -> None:
        while (envelope := await self._queue.get()) is not None:
            await self.deliver(envelope)
