"""Event bus implementations of `hub.ports.EventBus`."""

from hub.events.local import LocalBus
from hub.events.redis_bus import RedisBus

__all__ = ["LocalBus", "RedisBus"]
