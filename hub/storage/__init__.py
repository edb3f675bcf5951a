"""SQLModel storage behind the `hub.ports.Store` port (the only package that imports SQL)."""

from hub.storage.engine import create_engine_for
from hub.storage.store import SqlStore

__all__ = ["SqlStore", "create_engine_for"]
