"""The soak's invariants, checked on a consistent snapshot of the store and the org.

:func:`take_snapshot` reads the store in one transaction (a snapshot on both databases)
and only then the emulator's records. Workers only ever *set* opt-out fields, so
anything they do between the two reads can only make a record look more opted out than
the store snapshot requires, never hide a lost push; the soak itself (the only thing
that clears a field) and every sync run are paused while a snapshot is taken.

Each ``check_*`` function returns the broken cases as sentences (empty when the
invariant holds) and adds what it examined to ``checked``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from optsync.services.sync.push_phase import SENT_BY_RUN
from optsync.store.db import Database

EMAIL, SALES = "HasOptedOutOfEmail", "Sales_Opt_Out__c"
SF_FIELD = {"email_opt_out": EMAIL, "sales_opt_out": SALES}
OPEN = ("pending", "in_flight", "not_linked")


@dataclass(frozen=True)
class PersonRow:
    id: int
    email: str
    salesforce_id: str | None
    unsubscribed: bool


@dataclass(frozen=True)
class PushRow:
    id: int
    state: str
    field: str | None
    target_id: str | None
    code: str | None
    fix: str | None
    sent_at: datetime | None
    sent_by_run: int | None = None  # a push a sync run made (and recorded), not a worker


@dataclass(frozen=True)
class LedgerRow:
    id: int
    kind: str
    source: str
    created_at: datetime
    actor: str = ""


@dataclass(frozen=True)
class RunRow:
    id: int
    status: str
    field: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    report: dict[str, Any]


@dataclass
class Snapshot:
    persons: dict[int, PersonRow]
    pushes: dict[int, list[PushRow]]  # by person, oldest first
    ledger: dict[int, list[LedgerRow]]  # by person, oldest first
    runs: list[RunRow]
    remote: dict[str, dict[str, Any]] = field(default_factory=dict)

    def latest_push(self, person_id: int) -> PushRow | None:
        rows = self.pushes.get(person_id)
        return rows[-1] if rows else None


def _utc(value: Any) -> Any:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def read_store(db: Database) -> Snapshot:
    """Persons, pushes, ledger and runs as of one instant."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        else:  # pysqlite begins only before writes; a read transaction is a WAL snapshot
            conn.exec_driver_sql("BEGIN")
        persons = {
            r.id: PersonRow(r.id, r.email, r.salesforce_id, bool(r.unsubscribed))
            for r in conn.execute(
                text("SELECT id, email, salesforce_id, unsubscribed FROM persons")
            )
        }
        pushes: dict[int, list[PushRow]] = defaultdict(list)
        for r in conn.execute(
            text(
                "SELECT id, person_id, state, field, target_id, last_error_code, fix, sent_at, "
                "claimed_by FROM outbox ORDER BY id"
            )
        ):
            by = r.claimed_by or ""
            pushes[r.person_id].append(
                PushRow(
                    r.id,
                    r.state,
                    r.field,
                    r.target_id,
                    r.last_error_code,
                    r.fix,
                    _utc(r.sent_at),
                    int(by[len(SENT_BY_RUN) :]) if by.startswith(SENT_BY_RUN) else None,
                )
            )
        ledger: dict[int, list[LedgerRow]] = defaultdict(list)
        for r in conn.execute(
            text("SELECT id, person_id, kind, source, created_at, actor FROM ledger ORDER BY id")
        ):
            ledger[r.person_id].append(
                LedgerRow(r.id, r.kind, r.source, _utc(r.created_at), r.actor)
            )
        runs = []
        for r in conn.execute(
            text(
                "SELECT id, status, field, error, started_at, finished_at, report "
                "FROM sync_runs ORDER BY started_at, id"
            )
        ):
            report = r.report if isinstance(r.report, dict) else json.loads(r.report or "{}")
            runs.append(
                RunRow(
                    r.id,
                    r.status,
                    r.field,
                    r.error,
                    _utc(r.started_at),
                    _utc(r.finished_at),
                    report,
                )
            )
        conn.rollback()
    return Snapshot(persons, dict(pushes), dict(ledger), runs)


def read_remote(new_client: Any) -> dict[str, dict[str, Any]]:
    """Every Contact and Lead (deleted ones too) through the API, retried through the
    soak's faults, expired sessions and the exhausted daily limit."""
    fields = {
        "Contact": f"Id, Email, {EMAIL}, {SALES}, IsDeleted, MasterRecordId",
        "Lead": (
            f"Id, Email, {EMAIL}, {SALES}, IsDeleted, MasterRecordId, IsConverted, "
            "ConvertedContactId"
        ),
    }
    remote: dict[str, dict[str, Any]] = {}
    sf = new_client()
    for obj, cols in fields.items():
        for attempt in range(60):
            try:
                records = sf.query_all(f"SELECT {cols} FROM {obj}", include_deleted=True)["records"]
                break
            except Exception:  # 503, UNABLE_TO_LOCK_ROW, expired session, limit: again
                if attempt == 59:
                    raise
                time.sleep(0.5)
                sf = new_client()
        for rec in records:
            remote[rec["Id"]] = rec
    return remote


def take_snapshot(db: Database, new_client: Any) -> Snapshot:
    snap = read_store(db)
    snap.remote = read_remote(new_client)
    return snap


def _chain(remote: dict[str, dict[str, Any]], record_id: str) -> list[dict[str, Any]]:
    """The record and its converted/merged successors (at most three hops)."""
    out: list[dict[str, Any]] = []
    current: str | None = record_id
    while current and current in remote and len(out) < 4:
        rec = remote[current]
        out.append(rec)
        current = rec.get("ConvertedContactId") or rec.get("MasterRecordId")
    return out


def has_field(remote: dict[str, dict[str, Any]], record_id: str, fields: Iterable[str]) -> bool:
    return any(rec.get(f) for rec in _chain(remote, record_id) for f in fields)


def check_pushed_or_failed(snap: Snapshot, *, drained: bool, checked: Counter[str]) -> list[str]:
    """Invariant 1: every unsubscribed person with a Salesforce id has the field of its
    last push set on its record (or the record it became), or that push failed with a
    fix. Mid-soak an open push is still on its way; after the drain nothing may be open.
    A person with no push (pulled from Salesforce) or whose last push was cancelled by a
    re-subscribe needs either opt-out field."""
    broken = []
    for p in snap.persons.values():
        if not (p.unsubscribed and p.salesforce_id):
            continue
        last = snap.latest_push(p.id)
        if last is not None and last.state in OPEN:
            if drained:
                broken.append(f"person {p.id}: push {last.id} still {last.state} after the drain")
            else:
                checked["inv1_push_in_progress"] += 1
            continue
        if last is not None and last.state == "failed":
            if last.fix and last.code:
                checked["inv1_failed_with_fix"] += 1
            else:
                broken.append(f"person {p.id}: push {last.id} failed without a code and fix")
            continue
        wanted = (
            [last.field]
            if last is not None and last.state == "sent" and last.field
            else [EMAIL, SALES]
        )
        if has_field(snap.remote, p.salesforce_id, wanted):
            checked["inv1_set_in_salesforce"] += 1
            continue
        chain = [
            {
                k: r.get(k)
                for k in ("Id", EMAIL, SALES, "IsDeleted", "ConvertedContactId", "MasterRecordId")
            }
            for r in _chain(snap.remote, p.salesforce_id)
        ]
        broken.append(
            f"person {p.id}: unsubscribed, last push {last}, but {'/'.join(wanted)} is not set "
            f"on {p.salesforce_id} (record chain {chain or 'missing'})"
        )
    return broken


def check_address_records(snap: Snapshot, checked: Counter[str]) -> list[str]:
    """Invariant 1b: an opt-out belongs to the address. For every unsubscribed person
    whose last push a worker sent, every live, unconverted record whose email is the
    person's address (case-insensitive) has that push's field set, not only the linked
    one. (The soak never gives a record an address after its push was sent, so no record
    may be missing it.)"""
    by_email: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in snap.remote.values():
        if rec.get("Email") and not rec.get("IsDeleted") and not rec.get("IsConverted"):
            by_email[str(rec["Email"]).strip().lower()].append(rec)
    broken = []
    for p in snap.persons.values():
        last = snap.latest_push(p.id)
        if not p.unsubscribed or last is None or last.state != "sent" or not last.field:
            continue
        if last.sent_by_run is not None:  # a sync run sets the linked records it diffed
            continue
        for rec in by_email.get(p.email.lower(), []):
            if rec.get(last.field):
                checked["inv1b_address_records_set"] += 1
            else:
                broken.append(
                    f"person {p.id}: push {last.id} sent {last.field}, but record {rec['Id']} "
                    "with the same address does not have it"
                )
    return broken


def check_every_record_of_the_address(
    snap: Snapshot, final_report: dict[str, Any], checked: Counter[str]
) -> list[str]:
    """Invariant 10 (issue 16, after the final sync): an opt-out belongs to the address.
    Every Contact and unconverted Lead that is not deleted and carries the address of a
    person unsubscribed here has the final run's field set, whatever record the person is
    linked to, or the final run listed it as failed (with its fix)."""
    field_name = final_report.get("field") or EMAIL
    failed = {f.get("salesforce_id") for f in final_report.get("failures") or []}
    unsubscribed = {p.email for p in snap.persons.values() if p.unsubscribed}
    broken = []
    for rid, rec in snap.remote.items():
        email = str(rec.get("Email") or "").strip().lower()
        if not email or email not in unsubscribed:
            continue
        if rec.get("IsDeleted") or rec.get("IsConverted"):
            continue
        if rec.get(field_name):
            checked["inv10_record_of_the_address_set"] += 1
        elif rid in failed:
            checked["inv10_record_failed_with_fix"] += 1
        else:
            broken.append(
                f"record {rid} carries the unsubscribed address of a person here but "
                f"{field_name} is not set after the final sync"
            )
    return broken


def check_ledger(snap: Snapshot, checked: Counter[str]) -> list[str]:
    """Invariant 3: ``persons.unsubscribed`` is "the last ledger entry is an unsubscribe",
    and no two consecutive entries of a person have the same kind."""
    broken = []
    for p in snap.persons.values():
        entries = snap.ledger.get(p.id, [])
        last_unsub = bool(entries) and entries[-1].kind == "unsubscribe"
        if p.unsubscribed != last_unsub:
            broken.append(
                f"person {p.id}: unsubscribed={p.unsubscribed} but ledger "
                f"{[(e.kind, e.source) for e in entries]}"
            )
        for a, b in itertools.pairwise(entries):
            if a.kind == b.kind:
                broken.append(f"person {p.id}: two {a.kind} entries in a row ({a.id}, {b.id})")
        checked["inv3_ledger_agrees"] += 1
    return broken


def check_one_open_push(snap: Snapshot, checked: Counter[str]) -> list[str]:
    """Invariant 4: at most one open outbox row per person."""
    broken = []
    for pid, rows in snap.pushes.items():
        open_ = [r.id for r in rows if r.state in OPEN]
        if len(open_) > 1:
            broken.append(f"person {pid}: open pushes {open_}")
        checked["inv4_one_open_push"] += 1
    return broken


def check_runs_never_overlap(snap: Snapshot, checked: Counter[str]) -> list[str]:
    """Invariant 5 (the store's side): finished runs' intervals never overlap."""
    broken = []
    runs = [r for r in snap.runs if r.status != "running"]
    for a, b in itertools.pairwise(runs):
        if a.finished_at is None or a.finished_at > b.started_at:
            broken.append(
                f"runs #{a.id} ({a.started_at} to {a.finished_at}) and #{b.id} "
                f"(started {b.started_at}) overlapped"
            )
    for r in runs:
        if r.status == "failed" and not r.error:
            broken.append(f"run #{r.id} failed without a reason")
    checked["inv5_runs_never_overlapped"] = len(runs)
    return broken


@dataclass
class FieldTimeline:
    """When the synced field changed: ``(before, after, sf_field)``, where the change was
    committed somewhere in ``[before, after]``. ``grace`` covers a push claimed (and its
    field read) just before a switch and settled after it."""

    initial: str
    grace: timedelta
    switches: list[tuple[datetime, datetime, str]] = field(default_factory=list)

    def at(self, when: datetime) -> str | None:
        """The field in force at ``when``, or None too close after a switch to say."""
        current = self.initial
        for before, after, sf_field in self.switches:
            if when < before:
                return current
            if when <= after + self.grace:
                return None
            current = sf_field
        return current

    def windows(self) -> list[tuple[datetime, datetime | None, str]]:
        """``(from, until, sf_field)`` for each switch, ``until`` None for the last."""
        out = []
        for i, (_, after, sf_field) in enumerate(self.switches):
            until = self.switches[i + 1][0] if i + 1 < len(self.switches) else None
            out.append((after, until, sf_field))
        return out


def check_field_in_force(
    snap: Snapshot, timeline: FieldTimeline, checked: Counter[str]
) -> list[str]:
    """Invariant 8: a push (and a sync run) writes the field in force when it was made, and
    after each switch the new field was actually written."""
    broken = []
    run_fields = {run.id: run.field for run in snap.runs}
    for rows in snap.pushes.values():
        for r in rows:
            if r.state != "sent" or r.sent_at is None:
                continue
            if r.sent_by_run is not None:  # a sync run writes the field of its start
                if r.field != run_fields.get(r.sent_by_run):
                    broken.append(
                        f"push {r.id} made by run #{r.sent_by_run} wrote {r.field}, but the "
                        f"run synced {run_fields.get(r.sent_by_run)}"
                    )
                checked["inv8_sync_pushes_wrote_the_runs_field"] += 1
                continue
            expected = timeline.at(r.sent_at)
            if expected is None:
                checked["inv8_pushes_at_a_switch"] += 1
                continue
            if r.field != expected:
                broken.append(
                    f"push {r.id} sent at {r.sent_at} wrote {r.field}, but {expected} was in force"
                )
            checked[f"inv8_pushes_wrote_{expected}"] += 1
    for run in snap.runs:
        expected = timeline.at(run.started_at)
        if expected is not None and run.field is not None and run.field != expected:
            broken.append(
                f"run #{run.id} started {run.started_at} used {run.field}, "
                f"but {expected} was in force"
            )
        checked["inv8_runs_field_checked"] += expected is not None
    for start, until, sf_field in timeline.windows():
        sent = [
            r
            for rows in snap.pushes.values()
            for r in rows
            if r.state == "sent"
            and r.sent_at
            and r.sent_by_run is None
            and r.sent_at >= start
            and (until is None or r.sent_at <= until)
        ]
        if not sent:  # no push at all in the window (a loaded machine, the end of traffic)
            checked["inv8_switch_windows_without_pushes"] += 1
            continue
        if not any(r.field == sf_field for r in sent):
            broken.append(f"no push wrote {sf_field} after the switch at {start}")
        checked["inv8_switches_took_effect"] += 1
    return broken


LIVE_ACTOR = "salesforce live pull"
"""The ledger actor of the live pull's unsubscribes (``services/live_pull/handler.py``)."""


@dataclass(frozen=True)
class Tick:
    """A Salesforce user ticked Email Opt Out on ``record_id`` at ``at``; ``person_id``
    was linked to that record then (None: nobody), already unsubscribed or not."""

    record_id: str
    person_id: int | None
    at: datetime
    was_unsubscribed: bool


def check_live_opt_outs(
    snap: Snapshot,
    ticks: Iterable[Tick],
    timeline: FieldTimeline,
    *,
    settle: timedelta,
    checked: Counter[str],
) -> list[str]:
    """Invariant 9: every Salesforce-side opt-out on a record linked to a known person is
    applied here before the final sync (live, or by a sync run of the soak's own).

    Left out, and counted: records nobody was linked to, a person relinked since, records
    deleted or converted since (the live pull reads neither; the nightly sync follows
    conversions), a tick while another field was in force or within ``settle`` before a
    switch (its event may be judged by the next field), a person re-subscribed since."""
    broken = []
    for t in ticks:
        p = snap.persons.get(t.person_id) if t.person_id is not None else None
        rec = snap.remote.get(t.record_id, {})
        if p is None:
            checked["inv9_not_linked"] += 1
            continue
        if p.salesforce_id != t.record_id:
            checked["inv9_relinked_since"] += 1
            continue
        if rec.get("IsDeleted") or rec.get("IsConverted"):
            checked["inv9_deleted_or_converted_since"] += 1
            continue
        near = any(t.at <= before <= t.at + settle for before, _, _ in timeline.switches)
        if timeline.at(t.at) != EMAIL or near:
            checked["inv9_near_a_field_switch"] += 1
            continue
        entries = snap.ledger.get(p.id, [])
        if any(e.kind == "resubscribe" and e.created_at >= t.at for e in entries):
            checked["inv9_resubscribed_since"] += 1
            continue
        checked["inv9_salesforce_opt_outs_checked"] += 1
        if not p.unsubscribed:
            broken.append(
                f"person {p.id}: Email Opt Out ticked on {t.record_id} at {t.at:%H:%M:%S.%f} "
                f"is not applied here before the final sync "
                f"(ledger {[(e.kind, e.source, e.actor) for e in entries]})"
            )
        elif t.was_unsubscribed:
            checked["inv9_already_unsubscribed"] += 1
        else:
            last = [e for e in entries if e.kind == "unsubscribe"][-1]
            if last.actor == LIVE_ACTOR:
                checked["inv9_applied_by_live_pull"] += 1
            elif last.source == "salesforce":
                checked["inv9_applied_by_a_sync"] += 1
            else:
                checked["inv9_unsubscribed_otherwise"] += 1
    return broken


def raise_if(broken: list[str], what: str, where: str) -> None:
    if broken:
        more = f" (and {len(broken) - 8} more)" if len(broken) > 8 else ""
        raise AssertionError(
            f"{what} broken at {where}: {len(broken)} case(s){more}:\n  " + "\n  ".join(broken[:8])
        )


def sync_outcome(proc: subprocess.CompletedProcess[str] | None) -> tuple[str, str]:
    """Invariant 5: ``succeeded``, ``failed`` (with its reason) or ``refused`` (already in
    progress); anything else is ``unexplained`` and fails the soak."""
    if proc is None:
        return "unexplained", "the sync run did not finish within its timeout"
    report: dict[str, Any] | None = None
    with contextlib.suppress(ValueError):
        report = json.loads(proc.stdout) if proc.stdout.strip() else None
    if proc.returncode == 0 and report and report.get("status") == "succeeded":
        return "succeeded", ""
    if proc.returncode == 1 and report is None and "already in progress" in proc.stderr:
        return "refused", ""
    if proc.returncode == 1 and report and report.get("status") == "failed" and report.get("error"):
        return "failed", str(report["error"])[:120]
    return "unexplained", f"exit {proc.returncode}: {proc.stdout[-300:]} {proc.stderr[-300:]}"
