"""A run's push phase: set the field on every record the diff says lacks it: each
unsubscribed person's linked record and every other settable record the mirror has with
the address (issue 16: an opt-out reaches every record of the address).

The first round reads the push set of each object once into a temporary file (no
transaction open during the Salesforce calls, no size held in memory) and streams it, by
sObject Collections or one Bulk ingest job per object depending on the one volume rule
(:mod:`optsync.salesforce.volume`). Failed records then go through later rounds until
none is left: conversions and merges are followed by the shared engine
(:mod:`optsync.services.follow`), transient failures resent up to
:data:`~optsync.services.sync.options.RETRIES` times, everything else listed with its
fix.

Before each page and each later round, ``hold()`` checks (and refreshes) the run's
ownership; a run reaped meanwhile raises :class:`~optsync.services.sync.options.RunLost`
there, so a lost runner sends nothing more.

Every record the run set is written to the outbox as an already-sent push of its person
(field, record, time), after the Salesforce call and in a transaction of its own, so the
person's page and ``GET /api/v1/persons/…`` show the push like one the worker made. Those
rows are settled (never open): no worker picks them up, retries or the one-open-push rule
are unaffected, and retention prunes them like every sent push.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy.orm import Session

from optsync.domain.failures import Outcome
from optsync.salesforce import soql, volume
from optsync.salesforce.bulk import BulkApi
from optsync.salesforce.gateway import RecordResult, SalesforceGateway, Target
from optsync.services.follow import Attempt, Failed, follow, needs_following
from optsync.services.sync.options import RETRIES, SyncOptions
from optsync.store import sync_runs
from optsync.store.db import Database
from optsync.store.outbox import record_sent
from optsync.store.sync_scope import Scope

SyncAttempt = Attempt[int | None]
"""A record to set on behalf of a person (``owner``: the person id, if known)."""
SyncFailed = Failed[SyncAttempt]

SENT_BY_RUN = "sync run #"
"""``outbox.claimed_by`` of a push a sync run made (followed by the run's id)."""
"""Sent pushes per INSERT when a run records what it set."""


@dataclass
class Failure:
    person_id: int | None
    salesforce_id: str
    code: str
    message: str
    fix: str | None

    @classmethod
    def of(cls, f: SyncFailed) -> Failure:
        c = f.classification
        return cls(f.attempt.owner, f.attempt.target.salesforce_id, c.code, f.message[:2000], c.fix)

    def as_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "salesforce_id": self.salesforce_id,
            "code": self.code,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class PushState:
    pushed: int = 0
    failures: list[Failure] = field(default_factory=list)
    relinks: dict[int, str] = field(default_factory=dict)
    followed: int = 0
    via: set[str] = field(default_factory=set)
    by_object: Counter[str] = field(default_factory=Counter)
    """Records set per object."""
    to_push: int = 0
    """Records the first round had to set."""


class PushPhase:
    """Carries out one run's push; ``state`` says what it did so far."""

    def __init__(
        self,
        db: Database,
        run_id: int,
        gateway: SalesforceGateway,
        *,
        field_name: str,
        objects: Sequence[str] = soql.OBJECTS,
        scope: Scope | None = None,
        options: SyncOptions,
        bulk: Callable[[], BulkApi],
        hold: Callable[[Session], None],
        pushed: Callable[[int], None],
        clock: Callable[[], datetime],
    ) -> None:
        self.db, self.run_id, self.gateway = db, run_id, gateway
        self.field, self.options, self._bulk = field_name, options, bulk
        self.objects, self.scope = tuple(objects), scope
        self._hold, self._pushed, self._clock = hold, pushed, clock
        self.state = PushState()
        self._sent: list[tuple[int, str]] = []  # (person, record) set, not yet recorded

    def run(self) -> PushState:
        """Spool the push set per object (one read each: Contact, Lead, and Account in an
        org with Person Accounts), then push from the spools."""
        with contextlib.ExitStack() as stack:
            spools: dict[str, IO[str]] = {}
            to_push = 0
            for obj in self.objects:
                spool = stack.enter_context(tempfile.TemporaryFile("w+", encoding="ascii"))
                with self.db.transaction() as session:
                    self._hold(session)  # never read (or send) a page of a run no longer ours
                    to_push += sync_runs.spool_push_rows(
                        session, self.run_id, obj, spool, self.scope
                    )
                spools[obj] = spool
            self.state.to_push = to_push
            if to_push:
                use_bulk = volume.use_bulk(to_push, self.options.bulk_threshold)
                failed: list[SyncFailed] = []
                for obj in self.objects:
                    failed += self._push_object(obj, use_bulk, spools[obj])
                self._settle(failed)
                self._record_sent()
        return self.state

    def _progress(self) -> None:
        self._record_sent()
        self._pushed(self.state.pushed)

    def _record_sent(self) -> None:
        """Write the records set since the last call as sent pushes of their persons. Not
        held to the run's ownership: the field is set in Salesforce whoever owns the run."""
        if not self._sent:
            return
        sent, self._sent = self._sent, []
        with self.db.transaction() as session:
            record_sent(
                session,
                sent,
                field=self.field,
                sent_by=f"{SENT_BY_RUN}{self.run_id}",
                now=self._clock(),
            )

    def _hold_now(self) -> None:
        with self.db.transaction() as session:
            self._hold(session)

    def _push_object(self, obj: str, use_bulk: bool, spool: IO[str]) -> list[SyncFailed]:
        """First round for one object, streamed from its spool; returns the failures."""
        state = self.state
        if use_bulk:
            state.via.add("bulk")
            sent: list[tuple[int, str]] = []
            outcome = self._bulk().set_opt_out(obj, self.field, self._push_ids(spool, sent))
            state.pushed += outcome.succeeded
            if outcome.succeeded:  # records_set lists only the objects set
                state.by_object[obj] += outcome.succeeded
            bad = {f.salesforce_id for f in outcome.failures}
            self._sent += [(pid, sf) for pid, sf in sent if sf not in bad]
            self._progress()
            if not outcome.failures:
                return []
            persons: dict[str, int] = {sf: pid for pid, sf in sent if sf in bad}
            return [
                Failed(
                    SyncAttempt(persons.get(f.salesforce_id), Target(f.salesforce_id, obj)),
                    f.classification,
                    f.message,
                )
                for f in outcome.failures
            ]
        state.via.add("composite")
        failed: list[SyncFailed] = []
        for page in self._push_pages(spool):
            failed += self._composite([SyncAttempt(pid, Target(sf, obj)) for pid, sf in page])
            self._progress()
        return failed

    def _push_pages(self, spool: IO[str]) -> Iterator[list[tuple[int, str]]]:
        for page in sync_runs.spooled_pages(spool, self.options.push_page):
            self._hold_now()  # never send a page of a run no longer ours
            yield page

    def _push_ids(self, spool: IO[str], sent: list[tuple[int, str]]) -> Iterator[str]:
        """The records to set; each (person, record) handed out lands in ``sent``."""
        for page in self._push_pages(spool):
            sent += page
            for _pid, sf in page:
                yield sf

    def _succeeded(self, a: SyncAttempt) -> None:
        self.state.pushed += 1
        self.state.by_object[a.target.object] += 1
        if a.owner is not None:
            self._sent.append((a.owner, a.target.salesforce_id))
        if a.followed_from is not None and a.owner is not None:
            self.state.relinks[a.owner] = a.target.salesforce_id

    def _composite(self, attempts: Sequence[SyncAttempt]) -> list[SyncFailed]:
        if not attempts:
            return []
        results: list[RecordResult] = self.gateway.set_opt_out(
            [a.target for a in attempts], self.field
        )
        failed: list[SyncFailed] = []
        for a, r in zip(attempts, results, strict=True):
            if r.success:
                self._succeeded(a)
            else:
                assert r.classification is not None
                failed.append(Failed(a, r.classification, r.message or ""))
        return failed

    def _resend(self, attempts: list[SyncAttempt]) -> list[SyncFailed]:
        """Later rounds: retargets and retries, by REST or Bulk depending on their number."""
        self._hold_now()
        if not volume.use_bulk(len(attempts), self.options.bulk_threshold):
            return self._composite(attempts)
        failed: list[SyncFailed] = []
        for obj in soql.RECORD_OBJECTS:  # a follow may lead to an object not read first
            group = {a.target.salesforce_id: a for a in attempts if a.target.object == obj}
            if not group:
                continue
            outcome = self._bulk().set_opt_out(obj, self.field, list(group))
            bad = {f.salesforce_id: f for f in outcome.failures}
            for sf_id, a in group.items():
                f = bad.get(sf_id)
                if f is None:
                    self._succeeded(a)
                else:
                    failed.append(Failed(a, f.classification, f.message))
        return failed

    def _settle(self, failed: list[SyncFailed]) -> None:
        """Follow conversions and merges, resend transient failures, list the rest."""
        state = self.state
        while failed:
            again: list[SyncAttempt] = []
            to_follow: list[SyncFailed] = []
            for f in failed:
                c = f.classification
                if needs_following(c):
                    to_follow.append(f)
                elif c.outcome is Outcome.PERMANENT or f.attempt.retries >= RETRIES:
                    state.failures.append(Failure.of(f))
                else:
                    again.append(f.attempt.retried())
            if to_follow:
                self._hold_now()
                followed = follow(self.gateway, to_follow)
                state.followed += len(followed.retargets)
                state.failures += [Failure.of(f) for f in followed.failures]
                again += followed.retargets
            failed = self._resend(again) if again else []
            self._progress()
