"""Alembic environment: runs migrations on the URL handed over by hub.storage.migrate."""

from __future__ import annotations

from alembic import context

from hub.storage.engine import create_engine_for
from hub.storage.tables import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by hub.storage.migrate"
    engine = create_engine_for(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER much
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
