"""Engines with the settings each backend needs for durability and concurrency."""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine


def is_in_memory(url: str) -> bool:
    """An SQLite database that exists only inside the process (and connection) that opened it."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return database in ("", ":memory:") or parsed.query.get("mode") == "memory"


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (event payloads, attachments) through orjson: the stdlib encoder was a
# noticeable part of storing each message; OPT_NON_STR_KEYS keeps its int-keys-to-strings.
_JSON = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine_for(url: str, pool_size: int = 4) -> Engine:
    """An engine with the settings each backend needs for durability and concurrency."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **_JSON
        )

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite opens transactions lazily, only before a write, so a unit's reads would
            # run outside its transaction; SQLAlchemy's documented recipe: switch pysqlite's
            # handling off and emit BEGIN ourselves.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before we acknowledge; group commit keeps it cheap.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN")

        return engine
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **_JSON
    )
