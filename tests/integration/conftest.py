"""Fixtures shared by the web API and admin page tests: one app per test database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from optsync.bootstrap import Context
from optsync.settings import load_settings
from optsync.store.db import Database
from optsync.web.app import create_app

BASE_URL = "https://optsync.test"


@pytest.fixture
def ctx(database_url: str, tmp_path: Path, clock) -> Iterator[Context]:
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=database_url, secret_key="test", base_url=BASE_URL
    )
    context = Context(settings=settings, db=Database(database_url), clock=clock)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def app(ctx: Context):
    return create_app(ctx)
