"""The engine, sessions, and the schema-version gate.

``Database`` is built once from ``Settings`` by ``optsync.bootstrap`` and passed to the
services. Every command except ``optsync db upgrade`` calls :meth:`Database.require_current`
so that an un-migrated database is refused with a message naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from optsync.errors import ConfigError, DatabaseNotMigratedError

UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError, PoolTimeout)
"""Errors that say the database cannot be reached or used right now (refused or lost
connection, exhausted pool, SQLite's lock wait run out, a deadlock victim), not that a
request's data is wrong: retrying later is the remedy."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings optsync relies on for each dialect."""
    # Statement parameters (addresses, evidence, stored ciphertexts) stay out of error
    # messages and logs; the statement itself is still shown.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", {"connect_timeout": 10})
    return create_engine(url, **kwargs)


def database_now(session: Session) -> datetime:
    """The database server's clock, as an aware UTC datetime.

    Leases, heartbeats and the reaping of dead runs compare times written by different
    workers; reading them all from one clock (the database's) keeps a worker whose own
    clock is minutes off from stealing live work or keeping dead work alive. PostgreSQL:
    ``clock_timestamp()`` (the real time, not the transaction's start). SQLite runs in
    this process, so its clock is this machine's (to the millisecond).
    """
    if session.get_bind().dialect.name == "postgresql":
        value = session.execute(text("SELECT clock_timestamp()")).scalar_one()
        return value.astimezone(UTC)  # type: ignore[no-any-return]
    raw = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
    return datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("optsync.store") / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


class Database:
    """An engine plus a session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, timeout_s: float | None = None) -> Iterator[Session]:
        """A session whose work commits at the end of the block, or rolls back on error.

        ``timeout_s``: on PostgreSQL, no statement of the transaction (lock waits
        included) may take longer, or it fails with an ``OperationalError``; for request
        paths that must answer rather than hang behind a stuck lock. SQLite bounds its
        lock waits with ``busy_timeout`` (30 s) instead."""
        with self.sessions.begin() as session:
            if timeout_s is not None and self.dialect == "postgresql":
                milliseconds = max(1, int(timeout_s * 1000))
                session.execute(text(f"SET LOCAL statement_timeout = {milliseconds}"))
            yield session

    def upgrade(self, revision: str = "head") -> None:
        cfg = alembic_config(self.url)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                return MigrationContext.configure(conn).get_current_revision()
        except OperationalError as exc:
            raise ConfigError(
                f"cannot reach the database: {_first_line(exc)}",
                field="OPTSYNC_DATABASE_URL",
                fix="Check OPTSYNC_DATABASE_URL and that the database server is running.",
            ) from None

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()

    def require_current(self) -> None:
        """Refuse to work on a database that is not migrated to this version's head."""
        current = self.current_revision()
        if current != self.head_revision():
            state = "has no optsync tables" if current is None else f"is at revision {current}"
            raise DatabaseNotMigratedError(
                f"The database {state}; this version of optsync needs the latest schema.",
                field="OPTSYNC_DATABASE_URL",
                fix="Run `optsync db upgrade` first.",
            )

    def dispose(self) -> None:
        self.engine.dispose()


def _first_line(exc: BaseException) -> str:
    return (
        str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    )
