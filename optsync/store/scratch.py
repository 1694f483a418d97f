"""Throwaway PostgreSQL databases for the test suite and the benchmarks.

Shipped in the package (as procrastinate ships its ``testing`` module) so that tests,
``bench/`` scripts and users' own integration tests create and drop them one way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


def psycopg_url(url: str) -> str:
    """``postgresql://…`` → ``postgresql+psycopg://…`` (the driver optsync uses)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@contextmanager
def scratch_database(admin_url: str, prefix: str = "optsync_scratch") -> Iterator[str]:
    """Create an empty database next to ``admin_url``'s, yield its URL, drop it after
    (closing any connection still open to it)."""
    admin_url = psycopg_url(admin_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
