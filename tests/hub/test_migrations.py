"""Alembic migrations produce exactly the schema the tables declare, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hub.config import normalise_database_url
from hub.storage import migrate
from hub.storage.tables import metadata


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrated_schema_matches_the_tables(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    else:
        url = normalise_database_url(request.getfixturevalue("pg_database"))
    migrate.upgrade(url)
    migrate.upgrade(url)  # idempotent
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == [], f"tables and migrations disagree; write a migration: {diff}"
