"""The one place that wires configuration and adapters to the services."""

from __future__ import annotations

from dataclasses import dataclass, field

from optsync.clock import Clock, utcnow
from optsync.settings import Settings, load_settings
from optsync.store.db import Database


@dataclass
class Context:
    """What a command, the web app or a worker needs: settings, database, clock."""

    settings: Settings
    db: Database
    clock: Clock = field(default=utcnow)

    def close(self) -> None:
        self.db.dispose()


def open_context(
    settings: Settings | None = None, *, require_schema: bool = True, clock: Clock = utcnow
) -> Context:
    """Read settings, open the database and, unless told not to, refuse an old schema."""
    settings = settings or load_settings()
    settings.ensure_data_dir()
    db = Database(settings.resolved_database_url)
    if require_schema:
        try:
            db.require_current()
        except Exception:
            db.dispose()
            raise
    return Context(settings=settings, db=db, clock=clock)
