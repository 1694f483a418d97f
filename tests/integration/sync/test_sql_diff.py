"""The SQL diff (staging table + set-based queries) equals the pure planner.

Random persons and remote opt-outs are put in the database, the remote set is staged
exactly as a run stages it, and every list the planner produces is compared with what
the queries of :mod:`optsync.store.sync_runs` return (a dry run: nothing is applied).
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from optsync.domain.ids import make_id
from optsync.domain.planner import LocalPerson, plan_sync
from optsync.store import sync_runs
from optsync.store.models import Person, SyncRemoteOptOut, SyncRun

POOL = 40


def _id(k: int) -> str:
    return make_id("003" if k % 2 else "00Q", 1000 + k)


person_spec = st.tuples(
    st.one_of(st.none(), st.integers(0, POOL - 1)),  # linked record (None: not linked)
    st.booleans(),  # unsubscribed
    st.sampled_from(["never", "before", "after"]),  # re-subscribed vs the last run
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(person_spec, max_size=25),
    remote=st.sets(st.integers(0, POOL - 1), max_size=POOL),
)
def test_sql_diff_equals_the_planner(db, clock, specs, remote):
    with db.transaction() as s:
        s.execute(delete(SyncRemoteOptOut))
        s.execute(delete(SyncRun))
        s.execute(delete(Person))
    t0 = clock()
    seen: set[int] = set()
    rows, local = [], []
    with db.transaction() as s:
        last = SyncRun(
            trigger="manual",
            dry_run=False,
            status="succeeded",
            started_at=t0,
            finished_at=t0,
            report={},
        )
        s.add(last)
        s.flush()
        for i, (k, unsub, resub) in enumerate(specs):
            if k is not None and k in seen:
                k = None  # a record is linked to at most one person (unique id)
            if k is not None:
                seen.add(k)
            sf = _id(k) if k is not None else None
            at = {
                "never": None,
                "before": t0 - timedelta(hours=1),
                "after": t0 + timedelta(hours=1),
            }[resub]
            p = Person(
                email=f"p{i}@example.com",
                salesforce_id=sf,
                salesforce_object=None
                if sf is None
                else ("Contact" if sf.startswith("003") else "Lead"),
                unsubscribed=unsub,
                resubscribed_at=at,
                created_at=t0,
                updated_at=t0,
            )
            s.add(p)
            rows.append(p)
        s.flush()
        local = [
            LocalPerson(
                p.id,
                p.salesforce_id,
                p.unsubscribed,
                resubscribed_since_last_sync=p.resubscribed_at is not None
                and p.resubscribed_at > t0,
            )
            for p in rows
        ]
        run = sync_runs.create_run(
            s,
            trigger="manual",
            dry_run=True,
            field="HasOptedOutOfEmail",
            now=t0 + timedelta(hours=2),
        )
        run_id = run.id
        remote_ids = [_id(k) for k in sorted(remote)]
        sync_runs.stage_remote(
            s,
            run_id,
            ((r, "Contact" if r.startswith("003") else "Lead") for r in remote_ids),
            chunk=7,
        )

    plan = plan_sync(local, remote_ids)

    with db.transaction() as s:
        since = sync_runs.last_completed_start(s, before_run=run_id)
        assert since == t0
        counts = sync_runs.diff_counts(s, run_id)
        pull = sorted(sync_runs.iter_pull_plan(s, run_id, chunk=3))
        push = sorted(sync_runs.iter_push_plan(s, run_id, chunk=3))
        not_linked = list(sync_runs.iter_not_linked(s))
        reopted = [pid for pid, _ in sync_runs.reopted_out(s, run_id, since)]

    assert push == [(a.person_id, a.salesforce_id) for a in plan.push]
    assert pull == [(u.person_id, u.salesforce_id) for u in plan.unsubscribe_locally]
    assert not_linked == list(plan.not_linked)
    assert reopted == list(plan.reopted_out)
    assert counts.unknown_remote == plan.unknown_remote
    assert (counts.to_pull, counts.to_push, counts.not_linked) == (
        len(plan.unsubscribe_locally),
        len(plan.push),
        len(plan.not_linked),
    )
    assert counts.remote_opted_out == len(remote_ids)
    assert counts.local_unsubscribed == sum(p.unsubscribed for p in local)
