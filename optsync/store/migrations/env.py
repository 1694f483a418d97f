"""Alembic environment: runs on the connection optsync hands over, or on the configured URL."""

from __future__ import annotations

import logging

from alembic import context
from sqlalchemy import engine_from_config, pool

from optsync.store.models import Base

config = context.config

# alembic's INFO lines ("Context impl SQLiteImpl.", "Running upgrade 0005 -> 0006") are for
# whoever debugs a migration; `optsync db upgrade` and `optsync demo` say what happened in
# one line of their own. Debug logging (``--verbose``) keeps them.
if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
    logging.getLogger("alembic").setLevel(logging.WARNING)
target_metadata = Base.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _run(conn)
