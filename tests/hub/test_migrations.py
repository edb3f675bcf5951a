"""Alembic migrations produce exactly the schema the tables declare, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.config import normalise_database_url
from hub.storage import migrate
from hub.storage.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database on each backend (PostgreSQL: the session's, maybe migrated already)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.sqlite3'}"
    return normalise_database_url(request.getfixturevalue("pg_database"))


def test_migrated_schema_matches_the_tables(url: str) -> None:
    migrate.upgrade(url)
    migrate.upgrade(url)  # idempotent
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"tables and migrations disagree; write a migration: {diff}"


def test_messages_stored_before_formats_existed_get_theirs(url: str) -> None:
    """Revision 0006: what the bot and agents wrote is Markdown, what customers wrote plain."""
    migrate.upgrade(url, "0005")
    command.downgrade(migrate.alembic_config(url), "0005")
    engine = sa.create_engine(url)
    now = {"now": "2026-12-01 10:00:00+00:00"}
    with engine.begin() as conn:
        contact = conn.execute(
            sa.text(
                "INSERT INTO contact (display_name, tags, accessibility, created_at)"
                " VALUES ('Ann', '[]', '{}', :now) RETURNING id"
            ),
            now,
        ).scalar_one()
        conversation = conn.execute(
            sa.text(
                "INSERT INTO conversation (contact_id, channel, inbox, status, priority,"
                " required_skills, created_at, updated_at)"
                " VALUES (:contact, 'webchat', 'web', 'bot', 'normal', '[]', :now, :now)"
                " RETURNING id"
            ),
            {"contact": contact, **now},
        ).scalar_one()
        for author, direction in (("customer", "inbound"), ("bot", "outbound"),
                                  ("agent", "outbound")):  # fmt: skip
            conn.execute(
                sa.text(
                    "INSERT INTO message (conversation_id, direction, author_kind, text,"
                    " attachments, channel, delivery_state, created_at, choices)"
                    " VALUES (:conversation, :direction, :author, '**hi**', '[]', 'webchat',"
                    " 'sent', :now, '[]')"
                ),
                {"conversation": conversation, "author": author, "direction": direction, **now},
            )
    migrate.upgrade(url)
    with engine.connect() as conn:
        formats = conn.execute(
            sa.text(
                "SELECT author_kind, format FROM message WHERE conversation_id = :c ORDER BY id"
            ),
            {"c": conversation},
        )
        assert [tuple(r) for r in formats] == [
            ("customer", "plain"),
            ("bot", "markdown"),
            ("agent", "markdown"),
        ]
    engine.dispose()
