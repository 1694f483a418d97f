"""Fixtures of the migration tests: a fresh database of each backend, and a downgrade."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from alembic import command

from optsync.store.db import Database, alembic_config
from optsync.store.scratch import scratch_database
from tests.conftest import _postgres_admin_url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database with no optsync tables (each test migrates it where it needs)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        yield db
        db.dispose()
        return
    admin = _postgres_admin_url()
    assert admin is not None, "OPTSYNC_TEST_POSTGRES_URL is not set"
    with scratch_database(admin, prefix="optsync_mig") as url:
        db = Database(url)
        yield db
        db.dispose()


def _downgrade(db: Database, revision: str) -> None:
    cfg = alembic_config(db.url)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


@pytest.fixture
def downgrade() -> Callable[[Database, str], None]:
    """Migrate a database down to a revision."""
    return _downgrade
