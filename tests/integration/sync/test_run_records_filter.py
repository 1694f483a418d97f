"""The Unsubscribes list's ``pulled_by_run`` and ``pushed_by_run`` filters (issue 17: a run
report's counts link to the records behind them), over real runs on the emulator: exactly
the persons a run pulled (its ledger entries name it) and the persons whose records it set
(the sent pushes it recorded), not the other Salesforce unsubscribes or pushes of the same
minutes; with keyset pages and the CSV export."""

from __future__ import annotations

import csv
import io

from sqlalchemy import update

from optsync.domain.optout import Source
from optsync.services import unsubscribe_list as ul
from optsync.services.optouts import unsubscribe_email
from optsync.services.sync_run import run_sync
from optsync.store.models import OutboxPush
from tests.integration.sync.conftest import FAST, add_persons

SECRET = "test-secret"


def listed(db, limit: int = 100, **raw: str) -> list[str]:
    query = ul.parse_query(raw, tz="UTC", secret_key=SECRET)
    with db.transaction() as s:
        rows = ul.read_page(s, query, limit, secret_key=SECRET).rows
        assert ul.count(s, query) == len(rows)
        return [r.email for r in rows]


def test_a_runs_pulled_and_pushed_persons_and_no_one_else(db, clock, emu, gateway):
    c = emu.seed(contacts=6)["contact_ids"]
    for record in (c[0], c[1]):
        emu.control("PATCH", f"records/{record}", {"HasOptedOutOfEmail": True})
    add_persons(
        db,
        clock,
        [
            {"email": "pulled0@example.com", "salesforce_id": c[0]},
            {"email": "pulled1@example.com", "salesforce_id": c[1]},
            {"email": "pushed0@example.com", "salesforce_id": c[2], "unsubscribed": True},
            {"email": "pushed1@example.com", "salesforce_id": c[3], "unsubscribed": True},
            {"email": "pushed2@example.com", "salesforce_id": c[4], "unsubscribed": True},
        ],
    )
    with db.transaction() as s:
        # the same minutes: a Salesforce unsubscribe the live pull wrote, and a push a
        # worker sent; neither is the run's
        unsubscribe_email(
            s,
            "live@example.com",
            source=Source.SALESFORCE,
            actor="salesforce live pull",
            now=clock(),
            evidence={"record_id": c[5]},
        )
        worker = unsubscribe_email(
            s, "worker@example.com", source=Source.API, actor="t", now=clock()
        ).person.id
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == worker)
            .values(state="sent", claimed_by="worker-1", sent_at=clock(), settled_at=clock())
        )

    dry = run_sync(db, gateway, clock=clock, options=FAST, dry_run=True)
    clock.advance(seconds=1)
    first = run_sync(db, gateway, clock=clock, options=FAST)
    assert first["status"] == "succeeded" and (first["pulled"], first["pushed"]) == (2, 3)
    run = str(first["id"])

    assert listed(db, pulled_by_run=run, sort="email") == [
        "pulled0@example.com",
        "pulled1@example.com",
    ]
    assert listed(db, pushed_by_run=run, sort="email") == [
        "pushed0@example.com",
        "pushed1@example.com",
        "pushed2@example.com",
    ]
    # the run's time window with source=salesforce (what the link used to be) is wider
    assert "live@example.com" in listed(db, source="salesforce")
    assert listed(db, pulled_by_run=run, pushed_by_run=run) == []
    assert listed(db, pulled_by_run=str(dry["id"])) == []  # a dry run changes nothing
    assert listed(db, pushed_by_run=str(dry["id"])) == []
    # the filters combine with the others
    assert listed(db, pushed_by_run=run, q="pushed1") == ["pushed1@example.com"]

    # a later run pulls someone else: each run keeps its own
    clock.advance(minutes=5)
    emu.control("PATCH", f"records/{c[5]}", {"HasOptedOutOfEmail": True})
    add_persons(db, clock, [{"email": "later@example.com", "salesforce_id": c[5]}])
    second = run_sync(db, gateway, clock=clock, options=FAST)
    assert second["pulled"] == 1, second
    assert listed(db, pulled_by_run=str(second["id"])) == ["later@example.com"]
    assert len(listed(db, pulled_by_run=run)) == 2

    # keyset pages: every pushed person once, in order, one per page
    query = ul.parse_query({"pushed_by_run": run, "sort": "email"}, tz="UTC", secret_key=SECRET)
    seen: list[str] = []
    with db.transaction() as s:
        while True:
            page = ul.read_page(s, query, 1, secret_key=SECRET)
            seen += [r.email for r in page.rows]
            if page.next_cursor is None:
                break
            query = ul.parse_query(
                {"pushed_by_run": run, "sort": "email", "cursor": page.next_cursor},
                tz="UTC",
                secret_key=SECRET,
            )
    assert seen == ["pushed0@example.com", "pushed1@example.com", "pushed2@example.com"]

    # the CSV export: every row of the filter
    export = "".join(
        ul.csv_export(db, ul.parse_query({"pulled_by_run": run}, tz="UTC", secret_key=SECRET))
    )
    rows = list(csv.DictReader(io.StringIO(export)))
    assert sorted(r["email"] for r in rows) == ["pulled0@example.com", "pulled1@example.com"]
