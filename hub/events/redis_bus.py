"""Redis pub/sub event bus: hub processes sharing one database see each other's events.

Local subscribers get local events at once (no round trip); events from other nodes arrive
through the Redis channel, and a node skips its own echoes by `origin`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, cast

import redis.asyncio as aioredis

from hub.events.local import LocalBus
from hub.ports import BusEnvelope, BusHandler

log = logging.getLogger(__name__)
CHANNEL = "omnihub:events"


class RedisBus:
    def __init__(self, url: str, node_id: str | None = None, channel: str = CHANNEL):
        self._local = LocalBus(node_id)
        self.node_id = self._local.node_id
        self._url = url
        self._channel = channel
        self._redis: aioredis.Redis | None = None
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    def publish(self, envelope: BusEnvelope) -> None:
        self._local.publish(envelope)
        self._outbox.put_nowait(json.dumps(envelope, separators=(",", ":")))

    def subscribe(self, handler: BusHandler) -> Callable[[], None]:
        return self._local.subscribe(handler)

    async def start(self) -> None:
        self._redis = aioredis.from_url(self._url)
        await self._redis.ping()  # fail start-up loudly when Redis is unreachable
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)
        await self._local.start()
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="omnihub-redis-listen"),
            asyncio.create_task(self._send(), name="omnihub-redis-send"),
        ]

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        if self._tasks:
            await self._tasks[1]
            self._tasks[0].cancel()
            await asyncio.gather(self._tasks[0], return_exceptions=True)
        await self._local.close()
        if self._redis is not None:
            await self._redis.aclose()

    async def _send(self) -> None:
        assert self._redis is not None
        while (data := await self._outbox.get()) is not None:
            while True:
                try:
                    await self._redis.publish(self._channel, data)
                    break
                except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                    # Keep the event and retry: agents on other nodes must not miss it.
                    log.warning("redis publish failed; retrying in 1 s")
                    await asyncio.sleep(1)

    async def _listen(self, pubsub: Any) -> None:
        while True:
            try:
                async for raw in pubsub.listen():
                    await self._on_raw(raw)
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                log.warning("redis subscription lost; resubscribing in 1 s")
                await asyncio.sleep(1)
                try:
                    await pubsub.subscribe(self._channel)
                except (aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                    continue

    async def _on_raw(self, raw: dict[str, Any]) -> None:
        if raw.get("type") != "message":
            return
        try:
            envelope = cast(BusEnvelope, json.loads(raw["data"]))
        except (ValueError, TypeError):
            log.warning("ignoring a malformed event on %s", self._channel)
            return
        if envelope.get("origin") == self.node_id:
            return
        await self._local.deliver(envelope)
