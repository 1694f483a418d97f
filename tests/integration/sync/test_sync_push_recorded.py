"""A push made by a sync run shows on the person (person view, API): issue 17 item 9."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from optsync.services.person_views import find_by_id
from optsync.services.sync_run import run_sync
from optsync.store.models import OutboxPush
from tests.integration.sync.conftest import BULK, FAST, add_persons, remote, set_field

PATHS = {"rest": FAST, "bulk": BULK}


@pytest.mark.parametrize("path", ["rest", "bulk"])
def test_a_sync_push_is_a_sent_push_of_the_person(db, clock, emu, gateway, path):
    seed = emu.seed(contacts=2, leads=1)
    c, le = seed["contact_ids"], seed["lead_ids"]
    emu.control("DELETE", f"records/{c[1]}")  # this push fails: no sent push for it
    ids = add_persons(
        db,
        clock,
        [
            {"salesforce_id": c[0], "unsubscribed": True},
            {"salesforce_id": le[0], "unsubscribed": True},
            {"salesforce_id": c[1], "unsubscribed": True},
        ],
    )
    set_field(db, clock, "sales_opt_out")
    report = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert report["status"] == "succeeded" and report["pushed"] == 2, report
    assert remote(emu, c[0])["Sales_Opt_Out__c"] is True

    with db.transaction() as s:
        for pid, sf in ((ids[0], c[0]), (ids[1], le[0])):
            view = find_by_id(s, pid)
            assert view is not None and view.push is not None
            assert view.push.state == "pushed"
            assert view.push.field == "Sales_Opt_Out__c"
            assert view.push.target_id == sf
            assert view.push.sent_at == clock()
            assert [p.state for p in view.pushes] == ["pushed"]
        assert find_by_id(s, ids[2]).push is None  # listed in the run's failures instead
        # nothing is left for the worker: the records are set already
        assert {p.state for p in s.scalars(select(OutboxPush))} == {"sent"}

    again = run_sync(db, gateway, clock=clock, options=PATHS[path])
    assert again["pushed"] == 0
    with db.transaction() as s:
        assert len(list(s.scalars(select(OutboxPush)))) == 2  # a run that pushes nothing adds none


def test_a_dry_run_records_no_push(db, clock, emu, gateway):
    c = emu.seed(contacts=1)["contact_ids"]
    add_persons(db, clock, [{"salesforce_id": c[0], "unsubscribed": True}])
    assert run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)["pushed"] == 1
    with db.transaction() as s:
        assert not list(s.scalars(select(OutboxPush)))


def test_the_api_shows_the_sync_push(db, clock, emu, gateway):
    from optsync.services.person_views import view_of
    from optsync.store.models import Person
    from optsync.web.api.persons import PersonOut

    c = emu.seed(contacts=1)["contact_ids"]
    (pid,) = add_persons(db, clock, [{"salesforce_id": c[0], "unsubscribed": True}])
    assert run_sync(db, gateway, clock=clock, options=FAST)["pushed"] == 1
    with db.transaction() as s:
        out = PersonOut.of(view_of(s, s.get(Person, pid)))
    dumped = out.model_dump(mode="json")
    assert dumped["push"]["state"] == "pushed", dumped
    assert dumped["push"]["field"] == "HasOptedOutOfEmail"
