"""The SQL diff that production runs equals the pure planner (the specification).

Random persons and remote opt-outs are put in the database the way production puts them
there — every id normalised with ``to_18`` (15-character ids completed, case-lost
18-character ids repaired), each record linked to at most one person — and the remote
set is staged exactly as a run's fetch stages it. The planner gets the ids as they were
*given* (any case), the database the normalised ones; every list the planner produces
is then compared with what the queries a run uses return: ``pull_ids`` page by page
(and ``all_pull_ids``, the same set looked for from the staging side),
``push_rows`` page by page per object, ``reopted_out`` and ``diff_counts`` (a dry run:
nothing is applied).

Records shared by several persons: the generated persons often claim the same record,
also in another case or as its 15-character form. The store holds one link per record
(``persons.salesforce_id`` is unique, compared after the repair), so, as an import does
(``keep_existing_links``), the first claim keeps the record and later claimants stay
unlinked; the planner's shared-record rule therefore never applies in production, and
the planner is given the persons as stored.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from optsync.domain.ids import make_id, to_18
from optsync.domain.planner import LocalPerson, plan_sync
from optsync.salesforce import soql
from optsync.store import runs, sync_runs
from optsync.store.models import Person, SyncRemoteOptOut, SyncRun

POOL = 40
FORMS = ("canonical", "15", "lower", "upper")


def _id(k: int) -> str:
    return make_id("003" if k % 2 else "00Q", 1000 + k)


def _given(k: int, form: str) -> str:
    """Record ``k``'s id as a spreadsheet or an admin might type it."""
    canonical = _id(k)
    return {
        "canonical": canonical,
        "15": canonical[:15],
        "lower": canonical.lower(),
        "upper": canonical.upper(),
    }[form]


def _object(sf: str) -> str:
    return "Contact" if sf.startswith("003") else "Lead"


person_spec = st.tuples(
    st.one_of(st.none(), st.integers(0, POOL - 1)),  # claimed record (None: not linked)
    st.sampled_from(FORMS),  # how its id was given
    st.booleans(),  # unsubscribed
    st.sampled_from(["never", "before", "after"]),  # re-subscribed vs the last run
)


def _pages(fetch, limit=3):
    after, out = 0, []
    while True:
        rows = fetch(after, limit)
        if not rows:
            return out
        out += rows
        after = rows[-1] if isinstance(rows[-1], int) else rows[-1][0]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(person_spec, max_size=25),
    remote=st.dictionaries(st.integers(0, POOL - 1), st.sampled_from(FORMS), max_size=POOL),
)
def test_sql_diff_equals_the_planner(db, clock, specs, remote):
    with db.transaction() as s:
        s.execute(delete(SyncRemoteOptOut))
        s.execute(delete(SyncRun))
        s.execute(delete(Person))
    t0 = clock()
    held: set[str] = set()
    rows: list[tuple[Person, str | None]] = []
    with db.transaction() as s:
        s.add(
            SyncRun(
                trigger="manual",
                dry_run=False,
                status="succeeded",
                started_at=t0,
                finished_at=t0,
                report={},
            )
        )
        for i, (k, form, unsub, resub) in enumerate(specs):
            given_id = _given(k, form) if k is not None else None
            sf = to_18(given_id) if given_id is not None else None
            if sf is not None and sf in held:
                sf = given_id = None  # shared record: the first claim keeps the link
            if sf is not None:
                held.add(sf)
            at = {
                "never": None,
                "before": t0 - timedelta(hours=1),
                "after": t0 + timedelta(hours=1),
            }
            p = Person(
                email=f"p{i}@example.com",
                salesforce_id=sf,
                salesforce_object=None if sf is None else _object(sf),
                unsubscribed=unsub,
                resubscribed_at=at[resub],
                created_at=t0,
                updated_at=t0,
            )
            s.add(p)
            rows.append((p, given_id))
        s.flush()
        # the planner takes 18-character ids in any case: a 15-character one is completed
        local = [
            LocalPerson(
                p.id,
                None if given_id is None else given_id if len(given_id) == 18 else to_18(given_id),
                p.unsubscribed,
                resubscribed_since_last_sync=p.resubscribed_at is not None
                and p.resubscribed_at > t0,
            )
            for p, given_id in rows
        ]
        run_id = runs.create_run(
            s,
            trigger="manual",
            dry_run=True,
            field="HasOptedOutOfEmail",
            now=t0 + timedelta(hours=2),
            worker="test",
        ).id
        given_remote = [_given(k, form) for k, form in sorted(remote.items())]
        # staged as the fetch stages them: normalised with to_18
        sync_runs.stage_remote(
            s, run_id, ((to_18(r), _object(to_18(r))) for r in given_remote), chunk=7
        )

    plan = plan_sync(local, [r if len(r) == 18 else to_18(r) for r in given_remote])

    with db.transaction() as s:
        since = runs.last_completed_start(s, before_run=run_id)
        assert since == t0
        counts = sync_runs.diff_counts(s, run_id)
        pull = _pages(lambda after, n: sync_runs.pull_ids(s, run_id, after=after, limit=n))
        # what a run reads: the same set, looked for from the staging side
        all_pulled = list(sync_runs.all_pull_ids(s, run_id))
        push = sorted(
            (pid, sf)
            for obj in soql.OBJECTS
            for pid, sf, _ in _pages(
                lambda after, n, obj=obj: sync_runs.push_rows(
                    s, run_id, after=after, limit=n, object=obj
                )
            )
        )
        not_linked = list(
            s.scalars(
                select(Person.id)
                .where(Person.unsubscribed.is_(True), Person.salesforce_id.is_(None))
                .order_by(Person.id)
            )
        )
        reopted = [pid for pid, _ in sync_runs.reopted_out(s, run_id, since)]

    assert push == [(a.person_id, to_18(a.salesforce_id)) for a in plan.push]
    assert pull == [u.person_id for u in plan.unsubscribe_locally]
    assert all_pulled == pull
    assert not_linked == list(plan.not_linked)
    assert reopted == list(plan.reopted_out)
    assert counts.unknown_remote == plan.unknown_remote
    assert (counts.to_pull, counts.to_push, counts.not_linked) == (
        len(plan.unsubscribe_locally),
        len(plan.push),
        len(plan.not_linked),
    )
    assert counts.remote_opted_out == len(given_remote)
    assert counts.local_unsubscribed == sum(p.unsubscribed for p in local)
