"""A dry run shows its work: the records it would pull and push, the first 100 in the
report (``would_pull``, ``would_push``), every one stored for "all as CSV"."""

from __future__ import annotations

from optsync.services.sync import options as sync_options
from optsync.services.sync.report import preview_csv
from optsync.services.sync_run import run_sync
from optsync.store import sync_runs
from tests.integration.sync.conftest import FAST, add_persons
from tests.integration.sync.test_sync_run import _world


def test_a_dry_run_lists_what_it_would_pull_and_push(db, clock, emu, gateway):
    c, le, ids = _world(emu, db, clock, "HasOptedOutOfEmail")
    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    assert dry["status"] == "succeeded"
    assert [(r["person_id"], r["salesforce_id"], r["object"]) for r in dry["would_pull"]] == [
        (ids[0], c[0], "Contact"),
        (ids[1], le[0], "Lead"),
    ]
    assert [(r["person_id"], r["salesforce_id"]) for r in dry["would_push"]] == [
        (ids[2], c[1]),
        (ids[3], le[1]),
    ]
    assert all("@" in r["email"] for r in dry["would_pull"] + dry["would_push"])
    assert dry["preview_listed"] == 100
    with db.transaction() as s:
        stored = sync_runs.preview_rows(s, dry["id"])
    assert len(stored) == 4  # kept after the run's staging rows are gone
    real = run_sync(db, gateway, clock=clock, options=FAST)
    assert "would_pull" not in real  # a real run does, it does not list


def test_the_report_keeps_the_first_n_and_the_table_all(db, clock, emu, gateway, monkeypatch):
    from optsync.services.sync import runner

    monkeypatch.setattr(runner, "PREVIEW_LISTED", 1)
    assert sync_options.PREVIEW_LISTED == 100
    _world(emu, db, clock, "HasOptedOutOfEmail")
    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    assert len(dry["would_pull"]) == 1 and len(dry["would_push"]) == 1
    assert dry["pulled"] == 2 and dry["preview_listed"] == 1
    with db.transaction() as s:
        assert len(sync_runs.preview_rows(s, dry["id"], "pull")) == 2


def test_the_stored_records_are_exactly_what_the_run_would_pull_and_push(db, clock, emu, gateway):
    """At address level a dry run names every record: each duplicate the push would set
    (not only the linked one), the opted-out record that pulls an unlinked person, and
    each unknown address a pull would add as a suppressed person; so the counts the page
    and the CLI show equal the rows of "All as CSV", and a real run then does just that."""
    from tests.integration.sync.test_addresses import _email, _set, _settings

    field = "HasOptedOutOfEmail"
    seed = emu.seed(contacts=3, leads=2)
    c0, c1, c2 = seed["contact_ids"]
    le0, le1 = seed["lead_ids"]
    address = _email(emu, c0)
    _set(emu, le0, Email=address.upper())  # a duplicate of the unsubscribed address
    _set(emu, le1, **{field: True})  # pulls an unlinked person by address
    _set(emu, c2, **{field: True})  # an address nobody here has
    _settings(db, suppress_unknown=True)
    pushed_pid, pulled_pid = add_persons(
        db,
        clock,
        [
            {"email": address, "salesforce_id": c0, "unsubscribed": True},
            {"email": _email(emu, le1), "salesforce_id": None},
        ],
    )
    unknown = _email(emu, c2)
    assert _email(emu, c1) not in (address, unknown)

    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)

    assert dry["status"] == "succeeded", dry["error"]
    pulls = {
        (r["person_id"], r["email"], r["salesforce_id"], r["object"]) for r in dry["would_pull"]
    }
    assert pulls == {(pulled_pid, _email(emu, le1), le1, "Lead"), (None, unknown, c2, "Contact")}
    pushes = {(r["person_id"], r["salesforce_id"], r["object"]) for r in dry["would_push"]}
    assert pushes == {(pushed_pid, c0, "Contact"), (pushed_pid, le0, "Lead")}
    assert (dry["pulled"], dry["pushed"]) == (2, 2)
    assert (dry["would_pull_total"], dry["would_push_total"]) == (2, 2)
    with db.transaction() as s:
        csv_rows = list(preview_csv(s, dry["id"], field))
    assert len(csv_rows) == 1 + 4
    assert any(row.startswith(f"pull,,{unknown},{c2},Contact,") for row in csv_rows)

    real = run_sync(db, gateway, clock=clock, options=FAST)
    assert (real["pulled"], real["pushed"]) == (dry["pulled"], dry["pushed"])
    assert real["records_set"] == {"Contact": 1, "Lead": 1}


def test_a_dry_run_counts_the_records_its_pull_would_make_it_set(db, clock, emu, gateway):
    """A real run pushes after it pulls: an address it pulls (one record opted out in
    Salesforce) gets its other records set, and so does an unknown address it adds. The
    dry run's push list and count include those records, so they match the real run."""
    from tests.integration.sync.test_addresses import _email, _set, _settings

    field = "HasOptedOutOfEmail"
    seed = emu.seed(contacts=2, leads=2)
    c0, c1 = seed["contact_ids"]
    le0, le1 = seed["lead_ids"]
    known, unknown = _email(emu, c0), _email(emu, c1)
    _set(emu, c0, **{field: True})  # pulls the person linked to it ...
    _set(emu, le0, Email=known)  # ... whose duplicate Lead the push then sets
    _set(emu, c1, **{field: True})  # an address nobody has: added as a suppressed person ...
    _set(emu, le1, Email=unknown.upper())  # ... and its duplicate set too
    _settings(db, suppress_unknown=True)
    [pid] = add_persons(db, clock, [{"email": known, "salesforce_id": c0}])

    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)

    assert dry["status"] == "succeeded", dry["error"]
    pushes = {(r["person_id"], r["salesforce_id"], r["object"]) for r in dry["would_push"]}
    assert pushes == {(pid, le0, "Lead"), (None, le1, "Lead")}
    assert dry["pushed"] == dry["would_push_total"] == 2
    assert dry["pulled"] == dry["would_pull_total"] == 2

    real = run_sync(db, gateway, clock=clock, options=FAST)
    assert (real["pulled"], real["pushed"]) == (2, 2)
    assert real["records_set"] == {"Lead": 2}
