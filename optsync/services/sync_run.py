"""The nightly unsubscribe sync: one bidirectional run, from setup check to report.

A run is the planner (:mod:`optsync.domain.planner`) carried out at scale. Its phases:

1. **check** — the connection works and the selected field is a checkbox the integration
   user can update on Contact *and* Lead. A failed check fails the run with its fix
   before anything changes.
2. **fetch** — the ids of Contacts and (unconverted) Leads with the field set, streamed
   into the staging table in chunks: REST query below ``bulk_threshold`` records, a Bulk
   API 2.0 query job above it (decided by a ``COUNT()`` per object).
3. **diff** — counted in SQL (:mod:`optsync.store.sync_runs`); a dry run stops here.
4. **pull** — persons whose record has the field set become unsubscribed (source
   ``salesforce``, one ledger entry each, no push: Salesforce already has it), chunk by
   chunk, each chunk one transaction.
5. **push** — unsubscribed persons whose record lacks the field get it set: sObject
   Collections below the threshold, a Bulk ingest job per object above it. Converted
   Leads are followed to their Contact and merged records to their master, and the
   person is relinked; other failures are listed per record with the fix.

Why it is safe to kill at any point: the only local writes are the pull chunks (state
and ledger commit together) and relinks; the remote writes only ever set a checkbox to
true. Re-running recomputes the diff from both sides, so a half-done run just leaves
less to do, and a run right after a complete one changes nothing. Re-subscribes are
never synced: nothing here clears an opt-out on either side.

One run at a time is enforced by the database (a partial unique index on running runs),
not by a lock in this process, so it holds across any number of workers; a run whose
worker died (no heartbeat for ``stale_after``) is marked failed by the next start.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from optsync.clock import Clock
from optsync.domain.failures import Classification, Outcome, unfollowable
from optsync.domain.ids import to_18
from optsync.errors import OptsyncError, UsageError
from optsync.salesforce import soql
from optsync.salesforce.bulk import BulkApi
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import RecordResult, SalesforceGateway, Target
from optsync.services.sync_settings import get_settings
from optsync.store import persons as persons_store
from optsync.store import sync_runs
from optsync.store.db import Database
from optsync.store.models import SyncRun

log = logging.getLogger(__name__)

BULK_THRESHOLD = 2_000
"""Records above which Bulk API 2.0 is used (Salesforce's own rule of thumb)."""
STALE_AFTER = timedelta(minutes=5)
PULL_CHUNK = 2_000
PUSH_PAGE = 2_000
STAGE_CHUNK = 5_000
MAX_LISTED = 1_000
"""Failures and re-opted-out persons listed in the report; all failures are stored in
``sync_run_failures``."""
ROUNDS = 3
"""Push rounds: the original, then retargets (conversion, merge) and transient retries."""

PHASES = ("check", "fetch", "diff", "pull", "push")

Progress = Callable[[str, int, int | None], None]
"""``progress(phase, done, total)``; ``total`` is None while unknown."""

CONNECT_FIX = (
    "Run `optsync salesforce connect` (or set the OPTSYNC_SF_* variables) and check the "
    "connected app and integration user."
)


class RunInProgress(UsageError):
    """Another run is running; ``run_id`` names it."""

    def __init__(self, run_id: int | None):
        which = f" (#{run_id})" if run_id is not None else ""
        super().__init__(
            f"a run is already in progress{which}.",
            field="sync",
            fix="Wait for it to finish (`optsync sync history` shows it).",
        )
        self.run_id = run_id


class SlotTaken(UsageError):
    """Another scheduler already started the run for this scheduled instant."""

    def __init__(self, scheduled_for: datetime):
        super().__init__(f"the run scheduled for {scheduled_for.isoformat()} already exists.")
        self.scheduled_for = scheduled_for


class RunFailed(OptsyncError):
    """Raised inside a run to end it as failed with ``message`` (which carries the fix)."""


@dataclass(frozen=True)
class SyncOptions:
    """Tuning knobs; the defaults suit production, tests lower the thresholds."""

    bulk_threshold: int = BULK_THRESHOLD
    stale_after: timedelta = STALE_AFTER
    heartbeat_every: float = 30.0
    pull_chunk: int = PULL_CHUNK
    push_page: int = PUSH_PAGE
    stage_chunk: int = STAGE_CHUNK
    bulk_poll_initial: float = 0.2
    bulk_poll_max: float = 5.0


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# -- starting a run ---------------------------------------------------------------------


def start_run(
    db: Database,
    *,
    trigger: str,
    dry_run: bool,
    now: datetime,
    scheduled_for: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
    worker: str | None = None,
    clock: Clock | None = None,
) -> int:
    """Create the ``running`` run row and return its id.

    Stale runs are reaped first. Raises :class:`RunInProgress` when another run is
    running, :class:`SlotTaken` when ``scheduled_for`` already has a run (another worker
    won the race); both come from the database's unique indexes, not from a check that
    could race.

    With ``clock``, ``started_at`` is read once the INSERT has passed the unique index:
    by then any previous run has committed its end, so run intervals never overlap even
    when this start had to wait for that run to finish (``now`` was read before).
    """
    if trigger not in ("schedule", "manual"):
        raise UsageError(f"trigger: {trigger!r} is not schedule or manual.", field="trigger")
    with db.transaction() as session:
        sync_runs.reap_stale_runs(session, now=now, stale_after=stale_after)
        sync_runs.clear_orphan_staging(session)
    try:
        with db.transaction() as session:
            field_name = get_settings(session).salesforce_field
            run = sync_runs.create_run(
                session,
                trigger=trigger,
                dry_run=dry_run,
                field=field_name,
                now=now,
                scheduled_for=scheduled_for,
                worker=worker or worker_name(),
            )
            if clock is not None:
                run.started_at = run.heartbeat_at = max(clock(), now)
                session.flush()
            return int(run.id)
    except IntegrityError:
        with db.transaction() as session:
            if scheduled_for is not None:
                taken = session.scalar(
                    select(SyncRun.id).where(SyncRun.scheduled_for == scheduled_for)
                )
                if taken is not None:
                    raise SlotTaken(scheduled_for) from None
            running = sync_runs.running_run(session)
            raise RunInProgress(running.id if running else None) from None


# -- the run ----------------------------------------------------------------------------


@dataclass
class _Failure:
    person_id: int | None
    salesforce_id: str
    code: str
    message: str
    fix: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "salesforce_id": self.salesforce_id,
            "code": self.code,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass
class _Attempt:
    """One record to set, on behalf of one person (``followed_from``: the original id)."""

    person_id: int | None
    target: Target
    followed_from: str | None = None


@dataclass
class _PushState:
    pushed: int = 0
    failures: list[_Failure] = field(default_factory=list)
    relinks: dict[int, str] = field(default_factory=dict)
    followed: int = 0
    via: set[str] = field(default_factory=set)


class _Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a thread, so a long Salesforce call or Bulk job
    never makes a live run look dead to another worker."""

    def __init__(self, db: Database, run_id: int, clock: Clock, every: float):
        self.db, self.run_id, self.clock, self.every = db, run_id, clock, every
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"sync-heartbeat-{run_id}", daemon=True
        )

    def beat(self) -> None:
        with self.db.transaction() as session:
            sync_runs.heartbeat(session, self.run_id, self.clock())

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.beat()
            except Exception:  # noqa: S112 - a missed beat is retried on the next tick
                continue

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class SyncRunner:
    """Carries out one run (created by :func:`start_run`) and writes its report."""

    def __init__(
        self,
        db: Database,
        run_id: int,
        gateway: SalesforceGateway | Callable[[], SalesforceGateway],
        *,
        clock: Clock,
        options: SyncOptions | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self._gateway_source = gateway
        self.gateway: SalesforceGateway | None = None
        self.clock = clock
        self.options = options or SyncOptions()
        self.progress: Progress = progress or (lambda phase, done, total: None)
        self.report: dict[str, Any] = {}
        self._phase_started = 0.0
        self._calls_at_start = 0

    # -- driver -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every phase; always ends the run row as succeeded or failed."""
        with self.db.transaction() as session:
            row = session.get(SyncRun, self.run_id)
            if row is None or row.status != "running":
                raise UsageError(f"sync run #{self.run_id} is not running.")
            self.report = _initial_report(row)
            self.field = row.field or get_settings(session).salesforce_field
            self.dry_run = row.dry_run
        log.info("sync run started", extra={"run_id": self.run_id, "dry_run": self.dry_run})
        status, error = "succeeded", None
        heartbeat = _Heartbeat(self.db, self.run_id, self.clock, self.options.heartbeat_every)
        with heartbeat:
            try:
                self._check()
                self._fetch()
                self._diff()
                if not self.dry_run:
                    self._pull()
                    self._push()
            except RunFailed as exc:
                status, error = "failed", str(exc)
            except SalesforceCallError as exc:
                status, error = "failed", f"{exc} {exc.classification.fix}"
            except OptsyncError as exc:
                status, error = "failed", str(exc)
            except Exception as exc:
                self._finish("failed", f"unexpected error: {type(exc).__name__}: {exc}")
                raise
            except BaseException:  # Ctrl-C, SystemExit: end the run now, not after 5 min
                self._finish("failed", "interrupted; the next run redoes what is left")
                raise
        self._finish(status, error)
        return self.report

    def _finish(self, status: str, error: str | None) -> None:
        now = self.clock()
        self.report.update(
            status=status,
            error=error,
            finished_at=now.isoformat(),
            duration_s=round(
                (now - datetime.fromisoformat(self.report["started_at"])).total_seconds(), 3
            ),
            api_calls=self._api_calls(),
        )
        with self.db.transaction() as session:
            sync_runs.clear_staging(session, self.run_id)
            sync_runs.finish_run(
                session, self.run_id, status=status, error=error, report=self.report, now=now
            )
        log.log(
            logging.INFO if status == "succeeded" else logging.WARNING,
            "sync run finished",
            extra={
                "run_id": self.run_id,
                "status": status,
                "error": error,
                **{k: self.report.get(k) for k in ("pulled", "pushed", "api_calls")},
            },
        )
        if self.gateway is not None and not isinstance(self._gateway_source, SalesforceGateway):
            self.gateway.close()

    def _api_calls(self) -> int:
        return (self.gateway.api_calls - self._calls_at_start) if self.gateway else 0

    def _begin(self, phase: str) -> None:
        self._phase_started = time.perf_counter()
        self.progress(phase, 0, None)

    def _end(self, phase: str) -> None:
        self.report["phases"][phase] = round(time.perf_counter() - self._phase_started, 3)
        self.report["api_calls"] = self._api_calls()
        with self.db.transaction() as session:
            sync_runs.heartbeat(session, self.run_id, self.clock())
            sync_runs.save_report(session, self.run_id, dict(self.report))

    # -- check --------------------------------------------------------------------------
    def _check(self) -> None:
        self._begin("check")
        try:
            source = self._gateway_source
            self.gateway = source if isinstance(source, SalesforceGateway) else source()
        except UsageError as exc:
            raise RunFailed(f"Setup check failed: {exc.message} {exc.fix or CONNECT_FIX}") from None
        self._calls_at_start = self.gateway.api_calls
        try:
            checks = self.gateway.check_field(soql.field_name(self.field))
        except SalesforceCallError as exc:
            raise RunFailed(
                f"Setup check failed: cannot reach Salesforce ({exc.code}: {exc.message}). "
                f"{exc.classification.fix}"
            ) from None
        except OptsyncError as exc:  # the token request was refused: a setting is wrong
            raise RunFailed(f"Setup check failed: {exc}") from None
        bad = [c for c in checks if not c.ok]
        if bad:
            problems = " ".join(c.problem or "" for c in bad)
            fixes = dict.fromkeys(c.fix for c in bad if c.fix)
            raise RunFailed(f"Setup check failed: {problems} {' '.join(fixes)}".strip())
        self.progress("check", 1, 1)
        self._end("check")

    # -- fetch --------------------------------------------------------------------------
    def _bulk(self) -> BulkApi:
        assert self.gateway is not None
        return BulkApi(
            self.gateway,
            poll_initial=self.options.bulk_poll_initial,
            poll_max=self.options.bulk_poll_max,
        )

    def _fetch(self) -> None:
        assert self.gateway is not None
        self._begin("fetch")
        bulk = self._bulk()
        wheres = {obj: _opted_out_where(obj, self.field) for obj in soql.OBJECTS}
        counts = {obj: bulk.count(obj, wheres[obj]) for obj in soql.OBJECTS}
        total = sum(counts.values())
        self.progress("fetch", 0, total)
        done = 0
        fetch_via: dict[str, str] = {}
        for obj in soql.OBJECTS:
            ids: Iterator[str]
            if counts[obj] >= self.options.bulk_threshold:
                fetch_via[obj] = "bulk"
                ids = bulk.query_ids(f"SELECT Id FROM {obj} WHERE {wheres[obj]}")
            else:
                fetch_via[obj] = "rest"
                ids = self.gateway.query_opted_out(obj, self.field)
            for chunk in _chunked(ids, self.options.stage_chunk):
                rows = [(to_18(i), obj) for i in chunk]
                with self.db.transaction() as session:
                    sync_runs.stage_remote(session, self.run_id, rows)
                done += len(rows)
                self.progress("fetch", done, total)
        with self.db.transaction() as session:
            sync_runs.analyze_staging(session)
        self.report["fetch_via"] = fetch_via
        self._end("fetch")

    # -- diff ---------------------------------------------------------------------------
    def _diff(self) -> None:
        self._begin("diff")
        with self.db.transaction() as session:
            counts = sync_runs.diff_counts(session, self.run_id)
            since = sync_runs.last_completed_start(session, before_run=self.run_id)
            reopted = sync_runs.reopted_out(session, self.run_id, since, limit=MAX_LISTED)
        self.report.update(
            remote_opted_out=counts.remote_opted_out,
            local_unsubscribed=counts.local_unsubscribed,
            not_linked=counts.not_linked,
            remote_unknown=counts.unknown_remote,
            reopted_out=[{"person_id": pid, "email": email} for pid, email in reopted],
        )
        self.to_pull, self.to_push = counts.to_pull, counts.to_push
        if self.dry_run:
            self.report.update(pulled=counts.to_pull, pushed=counts.to_push)
        self.progress("diff", 1, 1)
        self._end("diff")

    # -- pull ---------------------------------------------------------------------------
    def _pull(self) -> None:
        self._begin("pull")
        self.progress("pull", 0, self.to_pull)
        pulled = after = 0
        while True:
            with self.db.transaction() as session:
                ids = sync_runs.pull_ids(
                    session, self.run_id, after=after, limit=self.options.pull_chunk
                )
                if not ids:
                    break
                pulled += sync_runs.apply_pull_chunk(
                    session, self.run_id, ids, field=self.field, now=self.clock()
                )
            after = ids[-1]
            self.report["pulled"] = pulled  # a run that fails later still says what it did
            self.progress("pull", pulled, self.to_pull)
        self.report["pulled"] = pulled
        self._end("pull")

    # -- push ---------------------------------------------------------------------------
    def _push(self) -> None:
        self._begin("push")
        self.progress("push", 0, self.to_push)
        state = _PushState()
        if self.to_push:
            use_bulk = self.to_push >= self.options.bulk_threshold
            failed: list[tuple[_Attempt, Classification, str]] = []
            for obj in soql.OBJECTS:
                failed += self._push_object(obj, use_bulk, state)
            self._settle(failed, state)
        with self.db.transaction() as session:
            relinked = persons_store.relink(session, state.relinks, self.clock())
            sync_runs.add_failures(session, self.run_id, [f.as_dict() for f in state.failures])
        codes = Counter(f.code for f in state.failures)
        self.report.update(
            pushed=state.pushed,
            failed=dict(sorted(codes.items())),
            failures=[f.as_dict() for f in state.failures[:MAX_LISTED]],
            failures_total=len(state.failures),
            followed=state.followed,
            relinked=relinked,
            push_via=sorted(state.via),
        )
        self._end("push")

    def _pushed(self, state: _PushState) -> None:
        self.report["pushed"] = state.pushed  # a run that fails later still says what it did
        self.progress("push", state.pushed, self.to_push)

    def _push_object(
        self, obj: str, use_bulk: bool, state: _PushState
    ) -> list[tuple[_Attempt, Classification, str]]:
        """First round for one object, streamed from the database; returns the failures."""
        assert self.gateway is not None
        if use_bulk:
            state.via.add("bulk")
            persons: dict[str, int] = {}
            outcome = self._bulk().set_opt_out(obj, self.field, self._push_ids(obj))
            state.pushed += outcome.succeeded
            self._pushed(state)
            if not outcome.failures:
                return []
            with self.db.transaction() as session:
                persons = sync_runs.persons_by_salesforce_id(
                    session, [f.salesforce_id for f in outcome.failures]
                )
            return [
                (
                    _Attempt(persons.get(f.salesforce_id), Target(f.salesforce_id, obj)),
                    f.classification,
                    f.message,
                )
                for f in outcome.failures
            ]
        state.via.add("composite")
        failed: list[tuple[_Attempt, Classification, str]] = []
        for page in self._push_pages(obj):
            attempts = [_Attempt(pid, Target(sf, obj)) for pid, sf in page]
            failed += self._composite(attempts, state)
            self._pushed(state)
        return failed

    def _push_pages(self, obj: str) -> Iterator[list[tuple[int, str]]]:
        after = 0
        while True:
            with self.db.transaction() as session:
                rows = sync_runs.push_rows(
                    session, self.run_id, after=after, limit=self.options.push_page, object=obj
                )
            if not rows:
                return
            yield [(pid, sf) for pid, sf, _ in rows]
            after = rows[-1][0]

    def _push_ids(self, obj: str) -> Iterator[str]:
        for page in self._push_pages(obj):
            for _pid, sf in page:
                yield sf

    def _composite(
        self, attempts: Sequence[_Attempt], state: _PushState
    ) -> list[tuple[_Attempt, Classification, str]]:
        assert self.gateway is not None
        if not attempts:
            return []
        results: list[RecordResult] = self.gateway.set_opt_out(
            [a.target for a in attempts], self.field
        )
        failed = []
        for a, r in zip(attempts, results, strict=True):
            if r.success:
                state.pushed += 1
                if a.followed_from is not None and a.person_id is not None:
                    state.relinks[a.person_id] = a.target.salesforce_id
            else:
                assert r.classification is not None
                failed.append((a, r.classification, r.message or ""))
        return failed

    def _resend(
        self, attempts: list[_Attempt], state: _PushState
    ) -> list[tuple[_Attempt, Classification, str]]:
        """Later rounds: retargets and retries, by REST or Bulk depending on their number."""
        if len(attempts) < self.options.bulk_threshold:
            return self._composite(attempts, state)
        failed: list[tuple[_Attempt, Classification, str]] = []
        for obj in soql.OBJECTS:
            group = {a.target.salesforce_id: a for a in attempts if a.target.object == obj}
            if not group:
                continue
            outcome = self._bulk().set_opt_out(obj, self.field, list(group))
            bad = {f.salesforce_id: f for f in outcome.failures}
            for sf_id, a in group.items():
                f = bad.get(sf_id)
                if f is None:
                    state.pushed += 1
                    if a.followed_from is not None and a.person_id is not None:
                        state.relinks[a.person_id] = sf_id
                else:
                    failed.append((a, f.classification, f.message))
        return failed

    def _settle(
        self, failed: list[tuple[_Attempt, Classification, str]], state: _PushState
    ) -> None:
        """Follow conversions and merges, retry transient failures, list the rest."""
        assert self.gateway is not None
        for round_no in range(1, ROUNDS + 1):
            if not failed:
                return
            again: list[_Attempt] = []
            conversions = [
                (a, c, m) for a, c, m in failed if c.outcome is Outcome.FOLLOW_CONVERSION
            ]
            merges = [(a, c, m) for a, c, m in failed if c.outcome is Outcome.FOLLOW_MERGE]
            for a, c, m in failed:
                if c.outcome in (Outcome.FOLLOW_CONVERSION, Outcome.FOLLOW_MERGE):
                    continue
                if c.outcome is Outcome.PERMANENT or round_no == ROUNDS:
                    state.failures.append(_failure(a, c, m))
                else:
                    again.append(a)
            again += self._follow(conversions, merges, state, final=round_no == ROUNDS)
            failed = self._resend(again, state) if again else []
            self._pushed(state)
        for a, c, m in failed:
            state.failures.append(_failure(a, unfollowable(c), m))

    def _follow(
        self,
        conversions: list[tuple[_Attempt, Classification, str]],
        merges: list[tuple[_Attempt, Classification, str]],
        state: _PushState,
        *,
        final: bool,
    ) -> list[_Attempt]:
        gateway = self.gateway
        assert gateway is not None
        retargets: list[_Attempt] = []
        lookups: list[
            tuple[
                list[tuple[_Attempt, Classification, str]],
                str,
                Callable[[list[str]], dict[str, str | None]],
            ]
        ] = []
        if conversions:
            lookups.append((conversions, "Contact", gateway.converted_contacts))
        for obj in soql.OBJECTS:
            group = [item for item in merges if item[0].target.object == obj]
            if group:
                lookups.append((group, obj, functools.partial(gateway.merged_masters, object=obj)))
        for items, new_object, lookup in lookups:
            found = lookup([a.target.salesforce_id for a, _, _ in items])
            for a, c, m in items:
                new_id = found.get(a.target.salesforce_id)
                if new_id and not final:
                    state.followed += 1
                    retargets.append(
                        _Attempt(
                            a.person_id,
                            Target(to_18(new_id), new_object),
                            followed_from=a.followed_from or a.target.salesforce_id,
                        )
                    )
                else:
                    state.failures.append(_failure(a, unfollowable(c), m))
        return retargets


# -- helpers ----------------------------------------------------------------------------


def _failure(a: _Attempt, c: Classification, message: str) -> _Failure:
    return _Failure(a.person_id, a.target.salesforce_id, c.code, message[:2000], c.fix)


def _opted_out_where(obj: str, field_name: str) -> str:
    where = f"{soql.field_name(field_name)} = true"
    if obj == "Lead":
        where += " AND IsConverted = false"  # converted Leads are read-only; their Contact counts
    return where


def _chunked(values: Iterator[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _initial_report(row: SyncRun) -> dict[str, Any]:
    return {
        "id": row.id,
        "trigger": row.trigger,
        "dry_run": row.dry_run,
        "status": row.status,
        "error": None,
        "field": row.field,
        "scheduled_for": row.scheduled_for.isoformat() if row.scheduled_for else None,
        "started_at": row.started_at.isoformat(),
        "finished_at": None,
        "duration_s": None,
        "remote_opted_out": 0,
        "local_unsubscribed": 0,
        "pulled": 0,
        "pushed": 0,
        "failed": {},
        "failures": [],
        "not_linked": 0,
        "reopted_out": [],
        "api_calls": 0,
        "phases": {},
    }


def report_of(row: SyncRun) -> dict[str, Any]:
    """The stored report of a run, with the row's own fields winning (a reaped run's
    report may predate its failure)."""
    report = _initial_report(row)
    report.update(row.report or {})
    report.update(
        id=row.id,
        trigger=row.trigger,
        dry_run=row.dry_run,
        status=row.status,
        error=row.error,
        field=row.field,
        finished_at=row.finished_at.isoformat() if row.finished_at else None,
    )
    return report


def run_sync(
    db: Database,
    gateway: SalesforceGateway | Callable[[], SalesforceGateway],
    *,
    clock: Clock,
    trigger: str = "manual",
    dry_run: bool = False,
    scheduled_for: datetime | None = None,
    options: SyncOptions | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Start a run and carry it out; returns the report (raises :class:`RunInProgress`)."""
    options = options or SyncOptions()
    run_id = start_run(
        db,
        trigger=trigger,
        dry_run=dry_run,
        now=clock(),
        scheduled_for=scheduled_for,
        stale_after=options.stale_after,
        clock=clock,
    )
    return SyncRunner(db, run_id, gateway, clock=clock, options=options, progress=progress).run()


def history(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    with db.transaction() as session:
        return [report_of(row) for row in sync_runs.list_runs(session, limit)]


def get_report(db: Database, run_id: int) -> dict[str, Any]:
    with db.transaction() as session:
        row = sync_runs.get_run(session, run_id)
        if row is None:
            from optsync.errors import NotFoundError

            raise NotFoundError(f"no sync run #{run_id}.", field="run_id")
        return report_of(row)


__all__ = [
    "PHASES",
    "RunInProgress",
    "SlotTaken",
    "SyncOptions",
    "SyncRunner",
    "get_report",
    "history",
    "report_of",
    "run_sync",
    "start_run",
]
