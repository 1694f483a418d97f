"""The record mirror (issue 16): newest read wins, addresses normalised, nothing lost."""

from __future__ import annotations

from datetime import timedelta

from optsync.store.records import (
    MirroredRecord,
    mark_deleted,
    mirror_state,
    records_by_email,
    save_mirror_state,
    upsert_records,
)

C1 = "003000000000001AAA"
L1 = "00Q000000000001AAA"
A1 = "001000000000001AAA"


def test_upsert_keeps_the_newest_read_and_known_values(db, clock):
    t0 = clock()
    with db.transaction() as s:
        upsert_records(
            s,
            [
                MirroredRecord(C1, "Contact", " Ann@Example.COM ", True, None, system_modstamp=t0),
                MirroredRecord(L1, "Lead", "ann@example.com", False, False, system_modstamp=t0),
                MirroredRecord(A1, "Account", "not an address", None, None, system_modstamp=t0),
            ],
            now=t0,
        )
    with db.transaction() as s:
        # an older read of the Contact changes nothing; a newer read of the Lead without
        # the custom field keeps the value known before
        upsert_records(
            s,
            [
                MirroredRecord(
                    C1,
                    "Contact",
                    "old@example.com",
                    False,
                    None,
                    system_modstamp=t0 - timedelta(seconds=1),
                ),
                MirroredRecord(
                    L1,
                    "Lead",
                    "ann@example.com",
                    True,
                    None,
                    converted=True,
                    system_modstamp=t0 + timedelta(seconds=5),
                ),
            ],
            now=t0,
        )
    with db.transaction() as s:
        by_email = records_by_email(s, ["ann@example.com", "old@example.com"], "email_opt_out")
        sales = records_by_email(s, ["ann@example.com"], "sales_opt_out")
    assert list(by_email) == ["ann@example.com"]
    contact, lead = by_email["ann@example.com"]
    assert (contact.record_id, contact.opted_out) == (C1, True)
    assert (lead.record_id, lead.opted_out, lead.converted) == (L1, True, True)
    assert lead.system_modstamp == t0 + timedelta(seconds=5)
    assert [r.opted_out for r in sales["ann@example.com"]] == [None, False]


def test_a_record_read_twice_in_one_batch_and_deleted_records(db, clock):
    t0 = clock()
    with db.transaction() as s:
        n = upsert_records(
            s,
            [
                MirroredRecord(C1, "Contact", "a@example.com", False, system_modstamp=t0),
                MirroredRecord(C1, "Contact", "b@example.com", True, system_modstamp=t0),
            ],
            now=t0,
        )
        assert n == 2
        assert mark_deleted(s, [C1, "003000000000099AAA"], now=t0) == 1
    with db.transaction() as s:
        (record,) = records_by_email(s, ["b@example.com"], "email_opt_out")["b@example.com"]
        assert record.deleted and record.opted_out and not record.settable
        assert records_by_email(s, ["a@example.com"], "email_opt_out") == {}


def test_mirror_state_moves_forward_only(db, clock):
    t0 = clock()
    with db.transaction() as s:
        assert mirror_state(s) is None
        save_mirror_state(s, t0, through=t0, complete=True, trusted=True)
        save_mirror_state(s, t0, through=t0 - timedelta(hours=1))
    with db.transaction() as s:
        state = mirror_state(s)
        assert state is not None and state.through == t0 and state.trusted
        assert state.complete_at == t0
        save_mirror_state(s, t0, trusted=False, reason="a GAP_OVERFLOW event")
    with db.transaction() as s:
        state = mirror_state(s)
        assert state is not None and not state.trusted and state.reason == "a GAP_OVERFLOW event"
