"""An incremental diff finds what a full diff finds (docs/sync.md "Incremental diff").

A random store is put in the state a complete run leaves (every person with an opted-out
record of the address or linked is unsubscribed, every record of an unsubscribed address
has the field, every unknown opted-out address has its suppressed person), with that
run's row as the baseline; then random changes follow, made the way optsync's writers
make them: opt-out changes with a ledger entry (some by a process whose clock is hours
behind, so only the ledger says so), links changed and persons created with
``updated_at``, records changed in Salesforce with a newer ``SystemModstamp`` (or none, as
``persons pull`` writes them). The next run's pull set, push set (every object, through
the spool the push phase reads) and re-opted-out list are then computed twice, over the
whole store and over the scope, and must be equal; so must the unknown addresses, unless
a link moved away from a record (a known limit: that record's address becomes unknown to
the next full diff only).

The ledger is append-only (even between examples), so each example has addresses and
record ids of its own and compares what the diffs say about them.
"""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from optsync.domain.ids import make_id
from optsync.domain.records import RECORD_OBJECTS
from optsync.services.sync.options import SCOPE_MARGIN
from optsync.store import runs, sync_runs, sync_scope
from optsync.store.models import (
    LedgerEntry,
    Person,
    SalesforceRecord,
    SyncRemoteOptOut,
    SyncRun,
)

ADDRESSES, RECORD_COUNT = 8, 12
EXAMPLES = itertools.count()
OLD = datetime(2026, 11, 20, tzinfo=UTC)  # persons and records before the baseline
THROUGH = datetime(2026, 11, 21, tzinfo=UTC)  # the mirror's watermark after the baseline
STARTED = datetime(2026, 11, 22, tzinfo=UTC)  # the baseline run
LATER = datetime(2026, 11, 23, tzinfo=UTC)  # the changes
FIELD = "HasOptedOutOfEmail"

record_spec = st.tuples(
    st.one_of(st.none(), st.integers(0, ADDRESSES - 1)),  # address
    st.booleans(),  # opted out
    st.sampled_from([False] * 5 + [True]),  # deleted
    st.sampled_from([False] * 5 + [True]),  # converted (Leads only)
)
person_spec = st.tuples(
    st.booleans(),  # exists
    st.booleans(),  # unsubscribed
    st.one_of(st.none(), st.integers(0, RECORD_COUNT - 1)),  # linked record
)
change = st.one_of(
    st.tuples(st.just("optout"), st.integers(0, ADDRESSES - 1), st.booleans()),
    st.tuples(st.just("link"), st.integers(0, ADDRESSES - 1), st.integers(0, RECORD_COUNT - 1)),
    st.tuples(st.just("new"), st.integers(0, ADDRESSES - 1), st.booleans()),
    st.tuples(st.just("record"), st.integers(0, RECORD_COUNT - 1), record_spec, st.booleans()),
)


def _object(record_id: str) -> str:
    return "Contact" if record_id.startswith("003") else "Lead"


def _settle(records: dict[str, dict], persons: dict[str, dict]) -> None:
    """The state a complete run leaves, computed the way the rules say."""

    def live(r: dict) -> bool:
        return not r["deleted"] and not r["converted"]

    while True:
        changed = False
        for email, p in persons.items():
            link = records.get(p["link"]) if p["link"] else None
            staged = any(r["opt"] and live(r) for r in records.values() if r["email"] == email)
            if (staged or (link and link["opt"] and live(link))) and not p["unsub"]:
                p["unsub"], changed = True, True
        for email, p in persons.items():
            if not p["unsub"]:
                continue
            for r in records.values():
                if r["email"] == email and live(r) and not r["opt"]:
                    r["opt"], changed = True, True
            link = records.get(p["link"]) if p["link"] else None
            if link is not None and not (link["opt"] and live(link)):
                link.update(opt=True, deleted=False, converted=False)
                changed = True
        linked = {p["link"] for p in persons.values()}
        for rid, r in records.items():
            email = r["email"]
            if r["opt"] and live(r) and email and email not in persons and rid not in linked:
                persons[email] = {"unsub": True, "link": None}  # a suppressed person
                changed = True
        if not changed:
            return


def _diff(s, run_id: int, scope: sync_scope.Scope | None, mine: dict[int, str], emails):
    """The diff's lists, of this example's persons and addresses."""
    s.execute(delete(SyncRemoteOptOut).where(SyncRemoteOptOut.run_id == run_id))
    sync_runs.stage_from_mirror(s, run_id, FIELD, scope)
    pull = [pid for pid in sync_runs.all_pull_ids(s, run_id, scope) if pid in mine]
    push = []
    for obj in RECORD_OBJECTS:
        spool = io.StringIO()
        sync_runs.spool_push_rows(s, run_id, obj, spool, scope)
        push += [tuple(line.split(",")) for line in spool.getvalue().splitlines()]
    push = [row for row in push if int(row[0]) in mine]
    reopted = [r for r in sync_runs.reopted_out(s, run_id, STARTED, scope=scope) if r[0] in mine]
    unknown = [
        u for u in sync_runs.unknown_addresses(s, run_id, after="", limit=100_000) if u[0] in emails
    ]
    return pull, sorted(push), reopted, unknown


NOTHING = [(None, False, False, False)] * RECORD_COUNT
NOBODY = [(False, False, None)] * ADDRESSES
ANN = [(True, False, None), *NOBODY[1:]]  # a subscribed person with the first address


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# one example per kind of change the scope must catch:
# a record gains an opted-out person's address, ...
@example(NOTHING, ANN, [("record", 0, (0, True, False, False), False)])
# ... a linked record is opted out (stamped, or written without a stamp), ...
@example(
    NOTHING, [(True, False, 1), *NOBODY[1:]], [("record", 1, (None, True, False, False), True)]
)
# ... a person is unsubscribed by a process whose clock is behind (only the ledger says), ...
@example([(0, False, False, False), *NOTHING[1:]], ANN, [("optout", 0, True)])
# ... an unsubscribed person is created, ...
@example(
    [(None, False, False, False), (1, False, False, False), *NOTHING[2:]],
    NOBODY,
    [("new", 1, True)],
)
# ... a person is linked to an opted-out record
@example([*NOTHING[:2], (None, True, False, False), *NOTHING[3:]], ANN, [("link", 0, 2)])
@given(
    world_records=st.lists(record_spec, min_size=RECORD_COUNT, max_size=RECORD_COUNT),
    world_persons=st.lists(person_spec, min_size=ADDRESSES, max_size=ADDRESSES),
    changes=st.lists(change, max_size=8),
)
def test_the_scoped_diff_equals_the_full_diff(db, world_records, world_persons, changes):
    n = next(EXAMPLES)
    EMAILS = [f"x{n}-a{i}@example.com" for i in range(ADDRESSES)]
    RECORDS = [make_id("003" if k % 2 else "00Q", 5000 + 100 * n + k) for k in range(RECORD_COUNT)]
    with db.transaction() as s:
        s.execute(delete(SyncRemoteOptOut))
    records = {
        rid: {
            "email": None if e is None else EMAILS[e],
            "opt": opt,
            "deleted": deleted,
            "converted": converted and _object(rid) == "Lead",
        }
        for rid, (e, opt, deleted, converted) in zip(RECORDS, world_records, strict=True)
    }
    persons: dict[str, dict] = {}
    taken: set[str] = set()
    for email, (exists, unsub, link) in zip(EMAILS, world_persons, strict=True):
        if exists:
            rid = RECORDS[link] if link is not None and RECORDS[link] not in taken else None
            taken.add(rid) if rid else None
            persons[email] = {"unsub": unsub, "link": rid}
    _settle(records, persons)

    with db.transaction() as s:
        for rid, r in records.items():
            s.add(
                SalesforceRecord(
                    record_id=rid,
                    object=_object(rid),
                    email=r["email"],
                    email_opt_out=r["opt"],
                    converted=r["converted"],
                    deleted=r["deleted"],
                    system_modstamp=OLD,
                    seen_at=OLD,
                )
            )
        rows = {}
        for email, p in persons.items():
            rows[email] = Person(
                email=email,
                salesforce_id=p["link"],
                salesforce_object=_object(p["link"]) if p["link"] else None,
                unsubscribed=p["unsub"],
                created_at=OLD,
                updated_at=OLD,
            )
            s.add(rows[email])
        s.flush()
        for row in rows.values():
            if row.unsubscribed:
                s.add(_entry(row.id, "unsubscribe", OLD))
        s.flush()
        watermark = s.scalar(select(func.max(LedgerEntry.id))) or 0
        s.add(
            SyncRun(
                trigger="manual",
                dry_run=False,
                status="succeeded",
                field=FIELD,
                started_at=STARTED,
                finished_at=STARTED + timedelta(minutes=5),
                ledger_watermark=watermark,
                report={"mirror": {"through": THROUGH.isoformat()}},
            )
        )

    relinked = False
    with db.transaction() as s:
        for op in changes:
            if op[0] == "optout":
                _, i, skewed = op
                row = s.scalar(select(Person).where(Person.email == EMAILS[i]))
                if row is None:
                    continue
                row.unsubscribed = not row.unsubscribed
                at = OLD if skewed else LATER  # a process whose clock is far behind
                row.updated_at = at
                if not row.unsubscribed:
                    row.resubscribed_at = at
                s.add(_entry(row.id, "unsubscribe" if row.unsubscribed else "resubscribe", at))
            elif op[0] == "link":
                _, i, k = op
                row = s.scalar(select(Person).where(Person.email == EMAILS[i]))
                holder = s.scalar(select(Person).where(Person.salesforce_id == RECORDS[k]))
                if row is None or holder is not None:
                    continue
                relinked = relinked or row.salesforce_id is not None
                row.salesforce_id, row.salesforce_object = RECORDS[k], _object(RECORDS[k])
                row.updated_at = LATER
            elif op[0] == "new":
                _, i, unsub = op
                if s.scalar(select(Person).where(Person.email == EMAILS[i])) is not None:
                    continue
                new = Person(
                    email=EMAILS[i], unsubscribed=unsub, created_at=LATER, updated_at=LATER
                )
                s.add(new)
                s.flush()
                if unsub:
                    s.add(_entry(new.id, "unsubscribe", LATER))
            else:
                _, k, (e, opt, deleted, converted), unstamped = op
                row = s.get(SalesforceRecord, RECORDS[k])
                assert row is not None
                row.email = None if e is None else EMAILS[e]
                row.email_opt_out = opt
                row.deleted = deleted
                row.converted = converted and _object(RECORDS[k]) == "Lead"
                row.system_modstamp = None if unstamped else LATER
            s.flush()
    with db.transaction() as s:
        run_id = runs.create_run(
            s, trigger="manual", dry_run=True, field=FIELD, now=LATER, worker="t"
        ).id
    try:
        full, scoped, in_scope = _both(db, run_id, EMAILS)
    finally:  # the next example starts a run of its own
        with db.transaction() as s:
            s.execute(delete(SyncRemoteOptOut).where(SyncRemoteOptOut.run_id == run_id))
            ended = s.get(SyncRun, run_id)
            assert ended is not None
            ended.status, ended.finished_at = "failed", LATER

    assert scoped[0] == full[0], "pull"
    assert scoped[1] == full[1], "push"
    assert scoped[2] == full[2], "re-opted out"
    if not relinked:
        assert [e for e, _ in scoped[3]] == [e for e, _ in full[3]], "unknown addresses"
    if not changes:
        assert full[:3] == ([], [], []) and in_scope == []  # settled means settled


def _both(db, run_id: int, emails: list[str]):
    """The diff over everyone and over the scope, of this example's persons."""
    with db.transaction() as s:
        baseline = sync_scope.last_baseline(s, before_run=run_id, field=FIELD)
        assert baseline is not None
        mine = {
            int(pid): email
            for pid, email in s.execute(
                select(Person.id, Person.email).where(Person.email.in_(emails))
            )
        }
        full = _diff(s, run_id, None, mine, emails)
        scope = sync_scope.scope_since(
            s, baseline, records_after=THROUGH, persons_after=STARTED - SCOPE_MARGIN
        )
        scoped = _diff(s, run_id, scope, mine, emails)
        return full, scoped, [pid for pid in scope.ids if pid in mine]


def _entry(person_id: int, kind: str, at: datetime) -> LedgerEntry:
    return LedgerEntry(
        person_id=person_id, kind=kind, source="api", actor="t", evidence={}, created_at=at
    )
