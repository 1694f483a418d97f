"""The mirror's COPY lines (PostgreSQL text format), built without psycopg's per-row path."""

from __future__ import annotations

from datetime import UTC, datetime

from optsync.store.records import _copy_lines

AT = datetime(2026, 12, 1, 4, 0, 0, 123000, tzinfo=UTC)


def test_values_nulls_and_booleans():
    rows = [
        ("0035g0000000001AAA", "Contact", "ann@example.com", True, None, False, False, AT, AT),
        ("00Q5g0000000001EAA", "Lead", None, None, False, True, True, None, AT),
    ]
    assert _copy_lines(rows).splitlines() == [
        "0035g0000000001AAA\tContact\tann@example.com\tt\t\\N\tf\tf\t"
        "2026-12-01T04:00:00.123000+00:00\t2026-12-01T04:00:00.123000+00:00",
        "00Q5g0000000001EAA\tLead\t\\N\t\\N\tf\tt\tt\t\\N\t2026-12-01T04:00:00.123000+00:00",
    ]


def test_the_specials_of_the_text_format_are_escaped():
    row = ("0035g0000000001AAA", "Contact", "a\\b\tc\nd\re", None, None, False, False, None, AT)
    line = _copy_lines([row])
    assert line.count("\n") == 1 and line.endswith("\n")
    assert line.split("\t")[2] == "a\\\\b\\tc\\nd\\re"
