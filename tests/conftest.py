"""Shared fixtures.

``db`` runs a test on SQLite and, when ``OPTSYNC_TEST_POSTGRES_URL`` is set, again on
PostgreSQL. Each test gets an isolated, fully migrated database: a copy of a migrated
SQLite template file, or a PostgreSQL database (created once per session) whose tables are
truncated after the test. With ``OPTSYNC_REQUIRE_POSTGRES=1`` (as CI sets), a missing
PostgreSQL URL is an error, never a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from optsync.store.db import Database
from optsync.store.models import Base
from optsync.store.scratch import psycopg_url, scratch_database

pytest_plugins = ["tests.fixtures_emulator", "tests.fixtures_logging"]

PG_ENV = "OPTSYNC_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    return psycopg_url(url) if url else None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.upgrade()
    db.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    admin_url = _postgres_admin_url()
    if admin_url is None:
        if os.environ.get("OPTSYNC_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{PG_ENV} is not set but OPTSYNC_REQUIRE_POSTGRES=1")
        pytest.skip(f"{PG_ENV} is not set")
    with scratch_database(admin_url, prefix="optsync_test") as url:
        db = Database(url)
        db.upgrade()
        db.dispose()
        yield url


def _truncate_all(db: Database) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """The URL of an isolated, migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "optsync.db"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    try:
        yield url
    finally:
        db = Database(url)
        _truncate_all(db)
        db.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    try:
        yield database
    finally:
        database.dispose()


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**kwargs)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> str:
    """Point the CLI at the test database and a private data dir."""
    monkeypatch.setenv("OPTSYNC_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OPTSYNC_DATABASE_URL", database_url)
    for name in list(os.environ):
        if name.startswith("OPTSYNC_SF_"):
            monkeypatch.delenv(name)
    return database_url


@pytest.fixture
def pg_db(postgres_url: str) -> Iterator[Database]:
    """PostgreSQL only (for behaviour that is a PostgreSQL deployment, e.g. many workers)."""
    database = Database(postgres_url)
    try:
        yield database
    finally:
        _truncate_all(database)
        database.dispose()


@pytest.fixture
def sf_gateway(emu):  # type: ignore[no-untyped-def]
    """A gateway to the (reset) emulator over client credentials."""
    from optsync.salesforce.gateway import SalesforceGateway
    from tests.integration.salesforce.conftest import config_for

    with SalesforceGateway(config_for(emu)) as gw:
        yield gw
