"""A check that no database transaction stays open across a Salesforce call.

:func:`watch` records, for every HTTP request optsync sends to Salesforce (token
requests and API calls alike: all go through :class:`SalesforceHTTP`), whether the
sending thread holds a database connection checked out of any SQLAlchemy pool at that
moment. A session in ``Database.transaction()`` holds its connection from its first
statement until commit or rollback, so a held connection during the call is exactly a
transaction held open across it. Connections held by *other* threads (a run's heartbeat,
another request) are not the caller's and are not counted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from optsync.salesforce.http import SalesforceHTTP


@dataclass
class Watch:
    requests: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """The URLs requested while the sending thread held a database connection."""

    def assert_none_held(self) -> None:
        assert self.requests, "no Salesforce request was made: the check proves nothing"
        assert not self.held, f"a database transaction was open during {self.held}"


@contextmanager
def watch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Watch]:
    out = Watch()
    owners: dict[int, int] = {}  # id(connection record) -> thread ident
    lock = threading.Lock()

    def checkout(_dbapi: Any, record: Any, _proxy: Any) -> None:
        with lock:
            owners[id(record)] = threading.get_ident()

    def checkin(_dbapi: Any, record: Any) -> None:
        with lock:
            owners.pop(id(record), None)

    original = SalesforceHTTP.request

    def request(self: SalesforceHTTP, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
        me = threading.get_ident()
        with lock:
            mine = any(owner == me for owner in owners.values())
            out.requests.append(str(url))
            if mine:
                out.held.append(f"{method} {url}")
        return original(self, method, url, *args, **kwargs)

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    monkeypatch.setattr(SalesforceHTTP, "request", request)
    try:
        yield out
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Pool, "checkin", checkin)
