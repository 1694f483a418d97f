"""The per-address record counts (migration 0012) follow every write of the mirror, on
both backends: after each of a random series of upserts, deletions, dropped records,
forgotten addresses and pushes, ``salesforce_addresses`` says what a ``GROUP BY`` over
the mirror says, and the report's duplicate total with it."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from optsync.store.records import (
    MirroredRecord,
    drop_records,
    forget_missing,
    mark_deleted,
    mark_opted_out,
    upsert_records,
)
from optsync.store.sync_runs import address_counts

ADDRESSES = ["ann@example.com", "bob@example.com", "cy@example.com", "Ann@Example.com ", None]
IDS = [f"003{n:012d}AAA" for n in range(8)] + [f"00Q{n:012d}AAA" for n in range(4)]


def counted(session) -> dict[str, int]:
    """The kept counts, without the addresses no live record carries any more."""
    rows = session.execute(text("SELECT email, records FROM salesforce_addresses"))
    return {email: n for email, n in rows if n != 0}


def mirrored_counts(session) -> dict[str, int]:
    """The counts as a GROUP BY over the mirror has them."""
    rows = session.execute(
        text(
            "SELECT email, count(*) FROM salesforce_records "
            "WHERE email IS NOT NULL AND NOT deleted GROUP BY email"
        )
    )
    return dict(rows.all())


def _step(rng: random.Random, db, clock) -> str:
    """One random write of the mirror; returns what it did (for the failure message)."""
    clock.advance(seconds=1)
    now = clock()
    op = rng.choice(["upsert", "upsert", "upsert", "partial", "delete", "drop", "forget", "push"])
    ids = rng.sample(IDS, rng.randint(1, 4))
    with db.transaction() as s:
        if op in ("upsert", "partial"):
            records = [
                MirroredRecord(
                    rid,
                    "Lead" if rid.startswith("00Q") else "Contact",
                    rng.choice(ADDRESSES),
                    rng.choice([True, False, None]),
                    None,
                    deleted=rng.random() < 0.2,
                    # now and then an older read, which changes nothing
                    system_modstamp=now - timedelta(seconds=rng.choice([0, 0, 0, 30])),
                    email_known=op == "upsert",
                )
                for rid in ids
            ]
            upsert_records(s, records, now)
        elif op == "delete":
            mark_deleted(s, ids, now)
        elif op == "drop":
            drop_records(s, ids)
        elif op == "forget":
            forget_missing(s, ["ann@example.com", "bob@example.com"], ids[:1], now)
        else:
            mark_opted_out(s, ids, "email_opt_out", now)
    return f"{op} {ids}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_counts_follow_every_write_of_the_mirror(db, clock, seed):
    rng = random.Random(seed)
    done: list[str] = []
    seen: set[int] = set()
    for _ in range(60):
        done.append(_step(rng, db, clock))
        with db.transaction() as s:
            mirrored = mirrored_counts(s)
            assert counted(s) == mirrored, done
            expected = sum(1 for n in mirrored.values() if n > 1)
            assert address_counts(s).duplicates == expected, done
            seen.add(expected)
    assert len(seen) > 2, seen  # the series made duplicates and undid some


def test_a_record_moving_between_addresses_moves_its_count(db, clock):
    now = clock()
    c1, c2, lead = IDS[0], IDS[1], IDS[8]
    with db.transaction() as s:
        upsert_records(
            s,
            [
                MirroredRecord(c1, "Contact", "ann@example.com", system_modstamp=now),
                MirroredRecord(c2, "Contact", "ann@example.com", system_modstamp=now),
                MirroredRecord(lead, "Lead", "bob@example.com", system_modstamp=now),
            ],
            now,
        )
        assert counted(s) == {"ann@example.com": 2, "bob@example.com": 1}
        assert address_counts(s).duplicates == 1
    later = now + timedelta(seconds=5)
    with db.transaction() as s:  # c2's address changes to bob's; the lead is deleted
        upsert_records(
            s, [MirroredRecord(c2, "Contact", "bob@example.com", system_modstamp=later)], later
        )
        mark_deleted(s, [lead], later)
        assert counted(s) == {"ann@example.com": 1, "bob@example.com": 1}
        assert address_counts(s).duplicates == 0
        rows = dict(s.execute(text("SELECT email, records FROM salesforce_addresses")).all())
        assert rows == {"ann@example.com": 1, "bob@example.com": 1}
        assert s.scalar(select(text("count(*)")).select_from(text("salesforce_records"))) == 3
