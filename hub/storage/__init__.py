"""SQLModel storage behind the `hub.ports.Store` port (the only package that imports SQL)."""

from hub.storage.store import SqlStore, create_engine_for

__all__ = ["SqlStore", "create_engine_for"]
