"""Group commit for the public unsubscribe endpoints.

A mail campaign's unsubscribes arrive in bursts of one-click POSTs, each a tiny write:
one person, one ledger entry, one push. Committing each in its own transaction spends
most of a request on the commit and the ORM around it. Instead, each request hands its
unsubscribe to :class:`GroupCommit` and waits; one committer writes everything that is
waiting in one set-based transaction (:func:`~optsync.services.bulk_unsubscribes.unsubscribe_ids`)
and answers every waiter. While that transaction runs, the next requests gather for the
following one, so batches grow with load and a lone request waits for nothing but its
own commit (there is no timer).

Nothing is answered before it is committed, so a crash loses no acknowledged
unsubscribe. If a batch's transaction fails, its requests are committed one by one, so
one failure (a database error on one row) answers only its own request with an error;
if the first of them fails too for want of a database, all of them get that error at
once (the web app answers ``503`` with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from fastapi.concurrency import run_in_threadpool

from optsync.services.bulk_unsubscribes import ByIdOutcome, ByIdRequest, unsubscribe_ids
from optsync.services.transactions import in_transaction
from optsync.store.db import UNAVAILABLE, Database

log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Requests per transaction at most: large enough for any burst one process can take in
while a commit runs, small enough that one statement's ``IN`` list stays modest."""

STATEMENT_TIMEOUT_S = 10.0
"""On PostgreSQL, a batch's statements may wait this long at most (say, behind a row
lock a stuck transaction holds); then its requests answer ``503`` and may be repeated,
instead of every one-click POST of the campaign hanging behind it."""

Waiter = tuple[ByIdRequest, "asyncio.Future[ByIdOutcome]"]


class GroupCommit:
    """Commit concurrent unsubscribe requests together; one instance per app (process)."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], datetime],
        *,
        max_batch: int = MAX_BATCH,
        timeout_s: float = STATEMENT_TIMEOUT_S,
    ) -> None:
        self._db = db
        self._timeout_s = timeout_s
        self._clock = clock
        self._max_batch = max_batch
        self._waiting: list[Waiter] = []
        self._committer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches = 0
        """Transactions committed so far (tests read it)."""

    async def submit(self, request: ByIdRequest) -> ByIdOutcome:
        """Record ``request`` and return its outcome once it is committed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (each test client may run its own): nothing of the old
            # one can still be waiting, since every waiter awaits its commit.
            self._loop, self._waiting, self._committer = loop, [], None
        future: asyncio.Future[ByIdOutcome] = loop.create_future()
        self._waiting.append((request, future))
        if self._committer is None or self._committer.done():
            self._committer = loop.create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        while self._waiting:
            batch = self._waiting[: self._max_batch]
            del self._waiting[: self._max_batch]
            requests = [request for request, _ in batch]
            try:
                outcomes = await run_in_threadpool(self._commit, requests)
            except BaseException as exc:  # the loop is shutting down: fail, never hang
                for _, future in batch:
                    if future.done():
                        continue
                    if isinstance(exc, Exception):
                        future.set_exception(exc)
                    else:
                        future.cancel()
                raise
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # its request was cancelled; the commit stands
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    def _commit(self, requests: list[ByIdRequest]) -> list[ByIdOutcome | BaseException]:
        """One transaction for the batch, or, if that fails, one per request. Never
        raises: a request whose own transaction fails gets its exception back."""
        if len(requests) > 1:
            try:
                return list(self._commit_together(requests))
            except Exception:
                log.warning(
                    "group commit of %d unsubscribes failed; committing each alone",
                    len(requests),
                    exc_info=True,
                )
        alone: list[ByIdOutcome | BaseException] = []
        for n, request in enumerate(requests):
            try:
                alone.extend(self._commit_together([request]))
            except UNAVAILABLE as exc:
                if n == 0 and len(requests) > 1:
                    # the batch failed and so does one request alone: the database is
                    # down, not a row wrong; trying each would wait out every timeout
                    return [exc] * len(requests)
                alone.append(exc)
            except Exception as exc:
                alone.append(exc)
        return alone

    def _commit_together(self, requests: list[ByIdRequest]) -> list[ByIdOutcome]:
        outcomes = in_transaction(
            self._db,
            lambda session: unsubscribe_ids(session, requests, now=self._clock()),
            timeout_s=self._timeout_s,
        )
        self.batches += 1
        return outcomes
