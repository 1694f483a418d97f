"""A running sync does not undo a re-subscribe made after it read Salesforce (issue 12.4).

The admin clears the field in Salesforce and re-subscribes the person while a run is
between its fetch and its pull. The run's snapshot still shows the field set; before this
fix its pull unsubscribed the person again, with a ledger reason that was false by then.
"""

from __future__ import annotations

from sqlalchemy import select

from optsync.domain.optout import Source
from optsync.services import optouts
from optsync.services.sync_run import run_sync
from optsync.store.models import LedgerEntry, Person
from tests.integration.sync.conftest import FAST, add_persons


def test_resubscribe_between_fetch_and_pull_is_not_undone(db, clock, emu, gateway):
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    emu.control("PATCH", f"records/{sf_id}", {"HasOptedOutOfEmail": True})
    [pid] = add_persons(db, clock, [{"salesforce_id": sf_id, "unsubscribed": True}])
    with db.transaction() as s:
        email = s.get(Person, pid).email
    acted = []

    def progress(phase: str, done: int, total: int | None) -> None:
        if phase == "pull" and not acted:  # the fetch is done, the pull not begun
            acted.append(True)
            clock.advance(seconds=1)
            emu.control("PATCH", f"records/{sf_id}", {"HasOptedOutOfEmail": False})
            with db.transaction() as s:
                optouts.resubscribe_email(
                    s, email, source=Source.ADMIN, actor="admin", now=clock(), reason="asked"
                )

    report = run_sync(db, gateway, clock=clock, options=FAST, progress=progress)
    assert acted and report["status"] == "succeeded", report["error"]
    assert report["pulled"] == 0
    with db.transaction() as s:
        person = s.get(Person, pid)
        kinds = list(
            s.scalars(
                select(LedgerEntry.kind)
                .where(LedgerEntry.person_id == pid)
                .order_by(LedgerEntry.id)
            )
        )
    assert person.unsubscribed is False
    assert kinds[-1] == "resubscribe"
    # the next run reads Salesforce afresh: the field is clear, nothing to pull
    clock.advance(seconds=60)
    again = run_sync(db, gateway, clock=clock, options=FAST)
    assert (again["status"], again["pulled"]) == ("succeeded", 0)


def test_a_person_changed_before_the_run_is_still_pulled(db, clock, emu, gateway):
    """The guard is about changes after the run began, not every person with history."""
    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    emu.control("PATCH", f"records/{sf_id}", {"HasOptedOutOfEmail": True})
    [pid] = add_persons(db, clock, [{"salesforce_id": sf_id, "unsubscribed": True}])
    with db.transaction() as s:
        email = s.get(Person, pid).email
        optouts.resubscribe_email(
            s, email, source=Source.ADMIN, actor="admin", now=clock(), reason="asked"
        )
    clock.advance(seconds=1)
    report = run_sync(db, gateway, clock=clock, options=FAST)
    assert report["pulled"] == 1
    assert [r["person_id"] for r in report["reopted_out"]] == [pid]
    with db.transaction() as s:
        assert s.get(Person, pid).unsubscribed is True


def test_a_run_of_the_other_field_does_not_hide_a_reopted_out_person(db, clock, emu, gateway):
    """Re-subscribed, then a run of the other field, then a run of this field pulls the
    person again: the report must still list them (it counted from the wrong run)."""
    from optsync.services.sync_settings import update_settings

    sf_id = emu.seed(contacts=1)["contact_ids"][0]
    emu.control("PATCH", f"records/{sf_id}", {"HasOptedOutOfEmail": True})
    [pid] = add_persons(db, clock, [{"salesforce_id": sf_id, "unsubscribed": True}])
    with db.transaction() as s:
        update_settings(s, {"sync_enabled": True}, actor="t", now=clock())
    assert run_sync(db, gateway, clock=clock, options=FAST)["status"] == "succeeded"
    clock.advance(seconds=60)
    with db.transaction() as s:
        email = s.get(Person, pid).email
        optouts.resubscribe_email(
            s, email, source=Source.ADMIN, actor="admin", now=clock(), reason="asked"
        )
        update_settings(s, {"field": "sales_opt_out"}, actor="t", now=clock())
    clock.advance(seconds=60)
    other = run_sync(db, gateway, clock=clock, options=FAST)
    assert (other["status"], other["pulled"]) == ("succeeded", 0)
    with db.transaction() as s:
        update_settings(s, {"field": "email_opt_out"}, actor="t", now=clock())
    clock.advance(seconds=60)
    again = run_sync(db, gateway, clock=clock, options=FAST)
    assert again["pulled"] == 1
    assert [r["person_id"] for r in again["reopted_out"]] == [pid]
