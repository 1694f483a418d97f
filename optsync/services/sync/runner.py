"""Carrying out a run: the phases, the heartbeat, and stopping when the run is lost.

Every write the runner makes to its run row is conditional on owning it (see
:mod:`optsync.store.runs`). Ownership is checked, and the heartbeat refreshed, in the
same transaction as each staging chunk, each pull chunk and each push page, and before
each later push round: if the reaper has marked the run failed (or it belongs to another
runner), :class:`~optsync.services.sync.options.RunLost` stops the run there. A lost
runner writes nothing more — no pull, no push, no report, no finish, no staging cleanup
— and returns the run's stored report (``failed``, with the reaper's reason).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from optsync.clock import Clock
from optsync.domain.records import linked_objects
from optsync.errors import OptsyncError, UsageError
from optsync.salesforce import replication, soql, volume
from optsync.salesforce.bulk import BulkApi
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.records_pull import Policy
from optsync.services.records_pull import policy as records_policy
from optsync.services.sync.options import (
    CONNECT_FIX,
    MAX_LISTED,
    PREVIEW_LISTED,
    Progress,
    RunFailed,
    RunLost,
    SyncOptions,
)
from optsync.services.sync.push_phase import PushPhase
from optsync.services.sync.report import get_report, initial_report
from optsync.services.sync.start import start_run
from optsync.services.sync_settings import get_settings
from optsync.store import persons as persons_store
from optsync.store import records as records_store
from optsync.store import runs, sync_runs, sync_scope
from optsync.store.db import Database
from optsync.store.models import SalesforceMirror, SyncRun, SyncSettings
from optsync.store.records import MirroredRecord
from optsync.store.sync_scope import Scope

log = logging.getLogger(__name__)
T = TypeVar("T")


class _Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a thread, so a long Salesforce call or Bulk job
    never makes a live run look dead to another worker; notes when the run is lost."""

    def __init__(self, db: Database, run_id: int, worker: str, every: float):
        self.db, self.run_id, self.worker, self.every = db, run_id, worker, every
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"sync-heartbeat-{run_id}", daemon=True
        )

    def beat(self) -> None:
        with self.db.transaction() as session:
            if runs.heartbeat(session, self.run_id, self.worker) == 0:
                self.lost.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.every) and not self.lost.is_set():
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
    """Carries out one run (created by :func:`start_run`) and writes its report.

    ``worker``: the run's owner token given to :func:`start_run`; without it the runner
    adopts the token on the row (the run was just created for it).
    """

    def __init__(
        self,
        db: Database,
        run_id: int,
        gateway: SalesforceGateway | Callable[[], SalesforceGateway],
        *,
        clock: Clock,
        options: SyncOptions | None = None,
        progress: Progress | None = None,
        worker: str | None = None,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self._gateway_source = gateway
        self.gateway: SalesforceGateway | None = None
        self.clock = clock
        self.options = options or SyncOptions()
        self.progress: Progress = progress or (lambda phase, done, total: None)
        self.worker = worker
        self.report: dict[str, Any] = {}
        self._phase_started = 0.0
        self._calls_at_start = 0
        self._heartbeat: _Heartbeat | None = None
        self.policy = Policy("HasOptedOutOfEmail")
        self.to_add = 0
        self.objects: tuple[str, ...] = soql.OBJECTS
        self.scope: Scope | None = None

    # -- driver -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run every phase; ends the run row as succeeded or failed, unless the run was
        lost (reaped): then it stops and returns the stored report."""
        with self.db.transaction() as session:
            row = session.get(SyncRun, self.run_id)
            if row is None or row.status != "running":
                raise UsageError(f"sync run #{self.run_id} is not running.")
            if self.worker is None:
                self.worker = row.worker or ""
            if row.worker != self.worker:
                log.warning("sync run %d belongs to another runner; not touching it", row.id)
                return get_report(self.db, self.run_id)
            self.report = initial_report(row)
            self.field = row.field or get_settings(session).salesforce_field
            self.dry_run = row.dry_run
        log.info("sync run started", extra={"run_id": self.run_id, "dry_run": self.dry_run})
        status, error = "succeeded", None
        self._heartbeat = _Heartbeat(
            self.db, self.run_id, self.worker, self.options.heartbeat_every
        )
        with self._heartbeat:
            try:
                self._check()
                self._fetch()
                self._diff()
                if not self.dry_run:
                    self._pull()
                    self._push()
            except RunLost:
                return self._lost()
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
        if not self._finish(status, error):
            return self._lost()
        return self.report

    def _lost(self) -> dict[str, Any]:
        log.warning(
            "sync run %d was reaped while running; this runner stops and writes nothing more",
            self.run_id,
        )
        self._close_gateway()
        return get_report(self.db, self.run_id)

    def _hold(self, session: Session) -> None:
        """Refresh the heartbeat of the run if still ours (same transaction as the work
        that follows), else raise :class:`RunLost`."""
        assert self.worker is not None
        lost = self._heartbeat is not None and self._heartbeat.lost.is_set()
        if lost or runs.heartbeat(session, self.run_id, self.worker) == 0:
            raise RunLost(f"sync run #{self.run_id} is no longer this runner's")

    def _finish(self, status: str, error: str | None) -> bool:
        """End the run if still ours; returns False when it was lost (nothing written)."""
        assert self.worker is not None
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
            finished = runs.finish_run(
                session,
                self.run_id,
                self.worker,
                status=status,
                error=error,
                report=self.report,
                now=now,
            )
            if finished:
                sync_runs.clear_staging(session, self.run_id)
        log.log(
            logging.INFO if status == "succeeded" else logging.WARNING,
            "sync run finished" if finished else "sync run lost to another runner; stopped",
            extra={
                "run_id": self.run_id,
                "status": status,
                "error": error,
                **{k: self.report.get(k) for k in ("pulled", "pushed", "api_calls")},
            },
        )
        self._close_gateway()
        return bool(finished)

    def _close_gateway(self) -> None:
        if self.gateway is not None and not isinstance(self._gateway_source, SalesforceGateway):
            self.gateway.close()
            self.gateway = None

    def _api_calls(self) -> int:
        return (self.gateway.api_calls - self._calls_at_start) if self.gateway else 0

    def _begin(self, phase: str) -> None:
        self._phase_started = time.perf_counter()
        self.progress(phase, 0, None)

    def _end(self, phase: str) -> None:
        assert self.worker is not None
        self.report["phases"][phase] = round(time.perf_counter() - self._phase_started, 3)
        self.report["api_calls"] = self._api_calls()
        with self.db.transaction() as session:
            self._hold(session)
            if runs.save_report(session, self.run_id, self.worker, dict(self.report)) == 0:
                raise RunLost(f"sync run #{self.run_id} is no longer this runner's")

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
            checks = self.gateway.check_field(soql.field_name(self.field), person_accounts=True)
            # Contact and Lead, and Person Accounts when the org has them (the Contact
            # describe of the check says: no call of its own)
            self.objects = soql.record_objects(self.gateway.has_person_accounts())
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
        """Bring the record mirror up to date, then stage its opted-out records.

        A trusted mirror is read incrementally: the records stamped since its watermark
        (less ``options.mirror_overlap``, for a commit stamped late), so the cost follows what
        changed, not the org's size. An untrusted one (first run, a Change Data Capture
        gap or overflow, a changed field, ``--full``) is re-read in full, and so is an
        object the last read did not cover (Person Accounts, the first time the org has
        them or this version reads them). Either read goes by REST or Bulk by the one
        volume rule, each chunk upserted in a transaction held to the run. Person
        Accounts are read with their person fields; the hidden PersonContacts are left
        out of the Contact read, and any an earlier reader mirrored as Contacts are
        dropped from the mirror when their Account is read."""
        assert self.gateway is not None
        self._begin("fetch")
        bulk = self._bulk()
        started = self.clock()
        person_accounts = "Account" in self.objects
        with self.db.transaction() as session:
            state = records_store.mirror_state(session)
            since: datetime | None = None
            reason = "first run"
            if state is not None:
                reason = state.reason or "no complete read yet"
                if state.trusted and state.through is not None:
                    since = state.through - self.options.mirror_overlap
            untrusted_at = state.updated_at if state is not None and not state.trusted else None
            covered = runs.last_read_objects(session, before_run=self.run_id)
        if covered is None:
            covered = set(soql.OBJECTS)
        since_of = {obj: since if obj in covered else None for obj in self.objects}
        wheres = {
            obj: replication.mirror_where(obj, since_of[obj], person_accounts=person_accounts)
            for obj in self.objects
        }
        counts = {obj: bulk.count(obj, wheres[obj]) for obj in self.objects}
        total = sum(counts.values())
        self.progress("fetch", 0, total)
        done = 0
        newest: datetime | None = None
        fetch_via = {
            obj: "bulk" if volume.use_bulk(counts[obj], self.options.bulk_threshold) else "rest"
            for obj in self.objects
        }
        queries = {
            obj: replication.mirror_query(
                obj, self.field, since_of[obj], person_accounts=person_accounts
            )
            for obj in self.objects
        }
        # every Bulk job is started first: Salesforce works on the next while this one's
        # records are read and written
        jobs = {
            obj: bulk.start_query(queries[obj]) for obj in self.objects if fetch_via[obj] == "bulk"
        }
        # the chunks are written behind the read, one at a time and in order, by a thread
        # of their own: the database works on one while the next is read and parsed
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sync-{self.run_id}-write")
        written: Future[None] | None = None
        try:
            for obj in self.objects:
                rows: Iterator[dict[str, Any]]
                if obj in jobs:
                    rows = bulk.records_of(jobs.pop(obj))
                else:
                    rows = self.gateway.query_records(queries[obj]) if counts[obj] else iter(())
                for chunk in _chunked(rows, self.options.stage_chunk):
                    records = [replication.mirrored(obj, self.field, r) for r in chunk]
                    hidden = (
                        [c for c in map(replication.person_contact, chunk) if c is not None]
                        if obj == "Account"
                        else []
                    )
                    stamps = [r.system_modstamp for r in records if r.system_modstamp is not None]
                    if stamps:
                        newest = max([*stamps, *([newest] if newest else [])])
                    if written is not None:
                        written.result()  # the previous chunk is committed (or raises)
                        self.progress("fetch", done, total)
                    written = writer.submit(self._mirror_chunk, records, hidden)
                    done += len(records)
            if written is not None:
                written.result()
                self.progress("fetch", done, total)
        finally:
            writer.shutdown(wait=True)
            for job_id in jobs.values():  # not read: a run that stopped
                bulk.abort_query(job_id)
        with self.db.transaction() as session:
            self._hold(session)
            current = records_store.mirror_state(session)
            # a gap the live pull noted while this read ran keeps the mirror untrusted
            marked_meanwhile = (
                current is not None
                and not current.trusted
                and (untrusted_at is None or current.updated_at > untrusted_at)
                and current.updated_at >= started
            )
            mirror = records_store.save_mirror_state(
                session,
                self.clock(),
                through=newest,
                complete=since is None,
                trusted=True if since is None and not marked_meanwhile else None,
            )
            if done >= self.options.analyze_after:
                records_store.analyze_mirror(session)
            full_objects = [obj for obj in self.objects if since_of[obj] is None]
            self.scope, why_full = self._scope(session, mirror, full_objects)
            staged = sync_runs.stage_from_mirror(session, self.run_id, self.field, self.scope)
            sync_runs.analyze_staging(session)
        self.report["fetch_via"] = fetch_via
        self.report["mirror"] = {
            "read": "full" if since is None else "incremental",
            "why": reason if since is None else None,
            "since": since.isoformat() if since else None,
            "through": mirror.through.isoformat() if mirror.through else None,
            "full_objects": full_objects,
            "records_read": done,
            "staged": staged,
        }
        scope = self.scope
        self.report["diff_scope"] = (
            {"changes_since_run": scope.baseline.run_id, "persons": len(scope), "why": None}
            if scope is not None
            else {"changes_since_run": None, "persons": None, "why": why_full}
        )
        self._end("fetch")

    def _mirror_chunk(self, records: list[MirroredRecord], hidden: list[str]) -> None:
        """Write one chunk of a mirror read, in a transaction held to the run."""
        with self.db.transaction() as session:
            self._hold(session)
            records_store.upsert_records(session, records, self.clock())
            records_store.drop_records(session, hidden)

    def _scope(
        self, session: Session, mirror: SalesforceMirror, full_objects: list[str]
    ) -> tuple[Scope | None, str]:
        """What the diff looks at (docs/sync.md "Incremental diff"): the persons changed
        since the last complete run, or everyone (None, with the reason) when that run
        cannot vouch for the rest."""
        if full_objects:
            return None, "the mirror was read in full"
        base = sync_scope.last_baseline(session, before_run=self.run_id, field=self.field)
        if base is None:
            return None, "no complete run of this field to start from"
        if mirror.complete_at is not None and mirror.complete_at > base.finished_at:
            return None, f"the mirror was read in full after run #{base.run_id}"
        settings = session.get(SyncSettings, 1)
        if settings is not None and settings.updated_at >= base.started_at:
            return None, f"the sync settings changed after run #{base.run_id} started"
        scope = sync_scope.scope_since(
            session,
            base,
            records_after=base.through - self.options.mirror_overlap,
            persons_after=base.started_at - self.options.scope_margin,
        )
        return scope, ""

    # -- diff ---------------------------------------------------------------------------
    def _diff(self) -> None:
        self._begin("diff")
        with self.db.transaction() as session:
            counts = sync_runs.diff_counts(
                session, self.run_id, pushes=self.dry_run, scope=self.scope, field=self.field
            )
            since = runs.last_completed_start(session, before_run=self.run_id, field=self.field)
            reopted = sync_runs.reopted_out(
                session, self.run_id, since, limit=MAX_LISTED, scope=self.scope
            )
            addresses = sync_runs.address_counts(session)
            self.policy = records_policy(session, self.field)
            if self.dry_run:  # what it would do, record by record (docs/sync.md "Dry run")
                self._hold(session)
                sync_runs.store_preview(
                    session,
                    self.run_id,
                    self.scope,
                    suppress_unknown=self.policy.suppress_unknown,
                )
                preview = {
                    d: sync_runs.preview_rows(session, self.run_id, d, limit=PREVIEW_LISTED)
                    for d in ("pull", "push")
                }
                preview_total = sync_runs.preview_counts(session, self.run_id)
        self.report.update(
            remote_opted_out=counts.remote_opted_out,
            local_unsubscribed=counts.local_unsubscribed,
            not_linked=counts.not_linked,
            remote_unknown=counts.unknown_remote,
            reopted_out=[{"person_id": pid, "email": email} for pid, email in reopted],
            addresses_fanned_out=counts.fanned_out,
            duplicates=addresses.duplicates,
            not_in_salesforce=addresses.not_in_salesforce,
            unknown_addresses=counts.unknown_addresses,
        )
        self.to_pull, self.to_push = counts.to_pull, counts.to_push
        self.to_add = counts.unknown_addresses if self.policy.suppress_unknown else 0
        if self.dry_run:
            self.report.update(
                pulled=preview_total["pull"],
                pushed=preview_total["push"],  # with what its pull would make it set
                suppressed_unknown=self.to_add,
                would_pull=[_listed(r) for r in preview["pull"]],
                would_push=[_listed(r) for r in preview["push"]],
                would_pull_total=preview_total["pull"],
                would_push_total=preview_total["push"],
                preview_listed=PREVIEW_LISTED,
            )
        self.progress("diff", 1, 1)
        self._end("diff")

    # -- pull ---------------------------------------------------------------------------
    def _pull(self) -> None:
        """Pull by address, add the unknown addresses (``suppress_unknown``), then link
        the persons that have no record yet (the linking rule)."""
        self._begin("pull")
        total = self.to_pull + self.to_add
        self.progress("pull", 0, total)
        pulled = 0
        with self.db.transaction() as session:
            self._hold(session)
            to_pull = sync_runs.all_pull_ids(session, self.run_id, self.scope)
        chunk = self.options.pull_chunk
        for start in range(0, len(to_pull), chunk):
            ids = to_pull[start : start + chunk].tolist()
            with self.db.transaction() as session:
                self._hold(session)  # a reaped run pulls nothing more
                pulled += sync_runs.apply_pull_chunk(
                    session, self.run_id, ids, field=self.field, now=self.clock()
                )
            self.report["pulled"] = pulled  # a run that fails later still says what it did
            self.progress("pull", pulled, total)
        added = 0
        last = ""
        while self.policy.suppress_unknown:
            with self.db.transaction() as session:
                self._hold(session)
                unknown = sync_runs.unknown_addresses(
                    session, self.run_id, after=last, limit=self.options.pull_chunk
                )
                if not unknown:
                    break
                now = self.clock()
                persons = persons_store.add_unknown(session, [e for e, _ in unknown], now)
                if self.scope is not None:  # their other records are pushed too
                    self.scope.add(persons.values())
                count = sync_runs.apply_pull_chunk(
                    session, self.run_id, sorted(persons.values()), field=self.field, now=now
                )
            added += count
            pulled += count
            last = unknown[-1][0]
            self.report.update(pulled=pulled, suppressed_unknown=added)
            self.progress("pull", pulled, total)
        linked = 0
        objects = linked_objects(self.policy.link_rule)
        # a full diff: every person; an incremental one: the scope, chunk by chunk
        parts: list[list[int] | None] = [None] if self.scope is None else list(self.scope.chunks())
        for part in parts if objects else []:
            after = 0
            while True:
                with self.db.transaction() as session:
                    self._hold(session)
                    candidates = sync_runs.unlinked_with_records(
                        session,
                        after=after,
                        limit=self.options.pull_chunk,
                        objects=objects,
                        persons=part,
                    )
                    if not candidates:
                        break
                    done = persons_store.auto_link(
                        session, candidates, self.policy.link_rule, self.field, self.clock()
                    )
                linked += len(done)
                after = candidates[-1]
        self.report.update(pulled=pulled, suppressed_unknown=added, auto_linked=linked)
        self._end("pull")

    # -- push ---------------------------------------------------------------------------
    def _push(self) -> None:
        assert self.gateway is not None
        self._begin("push")
        with self.db.transaction() as session:
            # counted after the pull: the persons it unsubscribed (and added) have other
            # records to set too
            self.report["addresses_fanned_out"] = sync_runs.fanned_out_count(
                session, self.run_id, self.scope
            )
        self.progress("push", 0, None)

        def pushed(n: int) -> None:
            self.report["pushed"] = n  # a run that fails later still says what it did
            self.progress("push", n, None)

        state = PushPhase(
            self.db,
            self.run_id,
            self.gateway,
            field_name=self.field,
            objects=self.objects,
            scope=self.scope,
            options=self.options,
            bulk=self._bulk,
            hold=self._hold,
            pushed=pushed,
            clock=self.clock,
        ).run()
        with self.db.transaction() as session:
            self._hold(session)
            relinked = persons_store.relink(session, state.relinks, self.clock())
            runs.add_failures(session, self.run_id, [f.as_dict() for f in state.failures])
            # a record deleted in Salesforce is never set again from the mirror
            records_store.mark_deleted(
                session,
                [f.salesforce_id for f in state.failures if f.code == "ENTITY_IS_DELETED"],
                self.clock(),
            )
        codes = Counter(f.code for f in state.failures)
        self.report.update(
            pushed=state.pushed,
            failed=dict(sorted(codes.items())),
            failures=[f.as_dict() for f in state.failures[:MAX_LISTED]],
            failures_total=len(state.failures),
            followed=state.followed,
            relinked=relinked,
            push_via=sorted(state.via),
            records_set=dict(sorted(state.by_object.items())),
        )
        self._end("push")


def _listed(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("person_id", "email", "salesforce_id", "object")}


def _chunked(values: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for value in values:
        chunk.append(value)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


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
    full: bool = False,
) -> dict[str, Any]:
    """Start a run and carry it out; returns the report (raises :class:`RunInProgress`).
    ``full``: re-read every record into the mirror."""
    options = options or SyncOptions()
    owner = runs.new_owner()
    run_id = start_run(
        db,
        trigger=trigger,
        dry_run=dry_run,
        now=clock(),
        scheduled_for=scheduled_for,
        stale_after=options.stale_after,
        worker=owner,
        clock=clock,
        full=full,
    )
    runner = SyncRunner(
        db, run_id, gateway, clock=clock, options=options, progress=progress, worker=owner
    )
    return runner.run()
