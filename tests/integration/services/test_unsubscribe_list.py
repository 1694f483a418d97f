"""The one query builder behind the Unsubscribes tab, its CSV export and
``GET /api/v1/unsubscribes`` (issue 17, "Lists that scale"), on SQLite and PostgreSQL:
each filter, each sort, keyset paging that neither repeats nor skips a row when
unsubscribes arrive between two pages, signed cursors, and the CSV export of every
matching row with formula-safe cells."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.errors import UsageError
from optsync.services import unsubscribe_list as ul
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import OutboxPush

SECRET = "test-secret"
TZ = "America/Los_Angeles"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def add(db, n: int, *, source=Source.API, when=None, obj: str | None = None, email=None) -> int:
    email = email or f"p{n:03d}@example.com"
    when = when or T0 + timedelta(minutes=n)
    with db.transaction() as s:
        if obj:
            prefix = "003" if obj == "Contact" else "00Q"
            upsert_person(s, PersonInput(n, email, make_id(prefix, n), obj), when)
        return unsubscribe_email(s, email, source=source, actor="t", now=when).person.id


def set_push(db, pid: int, **values) -> None:
    with db.transaction() as s:
        s.execute(update(OutboxPush).where(OutboxPush.person_id == pid).values(**values))


def q(**raw: str) -> ul.ListQuery:
    return ul.parse_query(raw, tz=TZ, secret_key=SECRET)


def emails(db, query: ul.ListQuery, limit: int = 100) -> list[str]:
    with db.transaction() as s:
        return [r.email for r in ul.read_page(s, query, limit, secret_key=SECRET).rows]


def test_each_filter_narrows_the_list(db):
    a = add(db, 1, source=Source.PAGE, obj="Contact")
    b = add(db, 2, source=Source.SALESFORCE, obj="Lead")
    c = add(db, 3, source=Source.CSV)  # not linked
    d = add(db, 4, source=Source.API, obj="Contact")
    set_push(db, a, state="sent", sent_at=T0)
    set_push(db, c, state="not_linked")  # looked up: Not in Salesforce
    set_push(db, d, state="failed", last_error_code="ENTITY_IS_DELETED", fix="Link again.")
    with db.transaction() as s:  # b's unsubscribe came from Salesforce: no push at all
        s.execute(OutboxPush.__table__.delete().where(OutboxPush.person_id == b))
    assert emails(db, q(source="page")) == ["p001@example.com"]
    assert emails(db, q(source="salesforce")) == ["p002@example.com"]
    assert emails(db, q(object="Contact")) == ["p004@example.com", "p001@example.com"]
    assert emails(db, q(object="Lead")) == ["p002@example.com"]
    assert emails(db, q(state="pushed")) == ["p001@example.com"]
    assert emails(db, q(state="failed")) == ["p004@example.com"]
    assert emails(db, q(state="not_linked")) == ["p003@example.com"]
    assert emails(db, q(state="none")) == ["p002@example.com"]
    assert emails(db, q(code="ENTITY_IS_DELETED")) == ["p004@example.com"]
    assert emails(db, q(code="OTHER")) == []
    assert emails(db, q(q="P00")) == [f"p00{n}@example.com" for n in (4, 3, 2, 1)]
    assert emails(db, q(q="p003")) == ["p003@example.com"]
    assert emails(db, q(q="100%_")) == []  # LIKE wildcards are literal
    # a Salesforce id, 15 or 18 characters, finds its person
    assert emails(db, q(q=make_id("003", 4))) == ["p004@example.com"]
    assert emails(db, q(q=make_id("003", 4)[:15])) == ["p004@example.com"]
    # filters combine
    assert emails(db, q(object="Contact", state="pushed")) == ["p001@example.com"]
    assert emails(db, q(object="Contact", source="csv")) == []
    with db.transaction() as s:
        assert ul.count(s, q()) == 4 and ul.count(s, q(object="Contact")) == 2
    assert c


def test_date_range_is_in_the_configured_time_zone(db):
    # 2026-11-21 07:30 UTC is still 2026-11-20 (23:30) in Los Angeles
    add(db, 1, when=datetime(2026, 11, 21, 7, 30, tzinfo=UTC))
    add(db, 2, when=datetime(2026, 11, 21, 8, 30, tzinfo=UTC))  # 00:30 on the 21st there
    add(db, 3, when=datetime(2026, 11, 23, 8, 30, tzinfo=UTC))
    assert emails(db, q(since="2026-11-20", until="2026-11-20")) == ["p001@example.com"]
    assert emails(db, q(since="2026-11-21")) == ["p003@example.com", "p002@example.com"]
    assert emails(db, q(until="2026-11-21")) == ["p002@example.com", "p001@example.com"]
    # a time with its offset is exact: since inclusive, until exclusive
    assert emails(db, q(since="2026-11-21T08:30:00Z", until="2026-11-23T08:30:00+00:00")) == [
        "p002@example.com"
    ]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"source": "nowhere"}, "source"),
        ({"source": "api "}, "source"),
        ({"state": "PUSHED"}, "state"),
        ({"object": "contact"}, "object"),
        ({"object": "Opportunity"}, "object"),
        ({"code": "BAD CODE"}, "code"),
        ({"since": "2026-13-01"}, "since"),
        ({"since": "2026-11-01\n"}, "since"),
        ({"since": "2026-11-01T00:00:00"}, "since"),  # no offset: whose midnight?
        ({"until": "yesterday"}, "until"),
        ({"since": "2026-11-02", "until": "2026-11-01"}, "until"),
        ({"q": "a\x00b"}, "q"),
        ({"q": "x" * 255}, "q"),
        ({"sort": "random"}, "sort"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"pulled_by_run": "twelve"}, "pulled_by_run"),
        ({"pulled_by_run": "0"}, "pulled_by_run"),
        ({"pulled_by_run": "012"}, "pulled_by_run"),
        ({"pulled_by_run": "12 "}, "pulled_by_run"),
        ({"pulled_by_run": "-3"}, "pulled_by_run"),
        ({"pulled_by_run": "\uff11\uff12"}, "pulled_by_run"),  # fullwidth digits
        ({"pushed_by_run": "1.0"}, "pushed_by_run"),
        ({"pushed_by_run": "#12"}, "pushed_by_run"),
        ({"pushed_by_run": str(2**63)}, "pushed_by_run"),
    ],
)
def test_bad_values_name_their_filter(raw, field):
    with pytest.raises(UsageError) as caught:
        q(**raw)
    assert caught.value.field == field and caught.value.message.startswith(f"{field}: ")


def test_the_run_filters_parse_to_a_run_id_and_stay_in_links():
    query = q(pulled_by_run="12", sort="email")
    assert (query.pulled_by_run, query.pushed_by_run) == (12, None) and query.filtered
    assert query.params() == {"pulled_by_run": "12", "sort": "email"}
    assert q(pushed_by_run=str(2**63 - 1)).pushed_by_run == 2**63 - 1


def test_a_tampered_or_foreign_cursor_is_refused(db):
    for n in range(3):
        add(db, n)
    with db.transaction() as s:
        page = ul.read_page(s, q(), 2, secret_key=SECRET)
    assert page.next_cursor
    good = page.next_cursor
    assert q(cursor=good).cursor is not None
    payload, mac = good.split(".")
    flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
    for bad in (f"{flipped}.{mac}", good[:-1], good + "x", f"{payload}.{'A' * 22}"):
        with pytest.raises(UsageError) as caught:
            q(cursor=bad)
        assert caught.value.field == "cursor"
    with pytest.raises(UsageError):  # signed with another secret key
        ul.parse_query({"cursor": good}, tz=TZ, secret_key="another")
    with pytest.raises(UsageError) as caught:  # a cursor of another sort order
        q(cursor=good, sort="email")
    assert caught.value.field == "cursor"


@pytest.mark.parametrize("sort", ul.SORTS)
def test_keyset_paging_under_inserts_neither_repeats_nor_skips(db, sort):
    for n in range(1, 8):
        add(db, n * 10)
    before = emails(db, q(sort=sort))
    assert len(before) == 7
    expected = {
        "newest": before,
        "oldest": before,
        "email": sorted(before),
        "email_desc": sorted(before, reverse=True),
    }[sort]
    assert before == expected
    if sort == "newest":
        assert before[0] == "p070@example.com"
    seen: list[str] = []
    cursor = ""
    for n in range(1, 11):  # 7 rows in pages of 3: a cursor that does not advance fails here
        with db.transaction() as s:
            page = ul.read_page(s, q(sort=sort, cursor=cursor), 3, secret_key=SECRET)
        seen += [r.email for r in page.rows]
        # between pages, new unsubscribes arrive: newer than all, and addresses sorting
        # before and after the page boundary
        add(db, 100 + n, when=T0 + timedelta(hours=5, minutes=n), email=f"a{n}@example.com")
        add(db, 200 + n, when=T0 + timedelta(hours=6, minutes=n), email=f"z{n}@example.com")
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    else:
        raise AssertionError("paging never reached the last page")
    original = [e for e in seen if e.startswith("p")]
    assert original == expected  # every row once, in order
    assert len(seen) == len(set(seen))  # no row twice


def test_previous_pages_go_back_exactly(db):
    for n in range(1, 11):
        add(db, n)
    with db.transaction() as s:
        p1 = ul.read_page(s, q(), 4, secret_key=SECRET)
        p2 = ul.read_page(s, q(cursor=p1.next_cursor or ""), 4, secret_key=SECRET)
        p3 = ul.read_page(s, q(cursor=p2.next_cursor or ""), 4, secret_key=SECRET)
        back = ul.read_page(s, q(cursor=p3.prev_cursor or ""), 4, secret_key=SECRET)
        first = ul.read_page(s, q(cursor=back.prev_cursor or ""), 4, secret_key=SECRET)
    assert p1.first and p1.prev_cursor is None
    assert [r.email for r in p3.rows] == ["p002@example.com", "p001@example.com"]
    assert p3.next_cursor is None and not p3.first
    assert [r.id for r in back.rows] == [r.id for r in p2.rows]
    assert [r.id for r in first.rows] == [r.id for r in p1.rows] and first.first


def test_csv_export_has_every_matching_row_and_safe_cells(db):
    with db.transaction() as s:  # 2,501 rows: more than two export chunks
        for n in range(1, 2502):
            unsubscribe_email(
                s,
                f"c{n:04d}@example.com",
                source=Source.CSV,
                actor="t",
                now=T0 + timedelta(seconds=n),
            )
    add(db, 9001, source=Source.API, email="=cmd@example.com")
    add(db, 9002, source=Source.API, email="-minus@example.com")
    text = "".join(ul.csv_export(db, q(source="csv", sort="oldest")))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(ul.CSV_COLUMNS)
    assert len(rows) == 2502 and rows[1][1] == "c0001@example.com"
    assert rows[-1][1] == "c2501@example.com" and rows[1][4] == "csv"
    assert rows[1][6] == "pending" and rows[1][5].endswith("+00:00")
    text = "".join(ul.csv_export(db, q(source="api")))
    cells = [r[1] for r in csv.reader(io.StringIO(text))][1:]
    assert cells == ["'-minus@example.com", "'=cmd@example.com"]


def test_some_records_failed_and_person_accounts_filter(db):
    from sqlalchemy import select

    from optsync.store.outbox import RecordOutcome, record_outcomes

    a = add(db, 1, obj="Contact")
    b = add(db, 2, obj="Contact")
    set_push(db, a, state="failed", last_error_code="INVALID_FIELD_FOR_INSERT_UPDATE", fix="f")
    set_push(db, b, state="sent", sent_at=T0)
    with db.transaction() as s:
        push_of = dict(s.execute(select(OutboxPush.person_id, OutboxPush.id)).all())
        record_outcomes(
            s,
            [
                RecordOutcome(push_of[a], make_id("003", 1), "Contact", "sent"),
                RecordOutcome(push_of[a], make_id("00Q", 9), "Lead", "failed", code="X", fix="f"),
                RecordOutcome(push_of[b], make_id("003", 2), "Contact", "sent"),
            ],
            T0,
        )
    assert emails(db, q(state="records_failed")) == ["p001@example.com"]
    with db.transaction() as s:
        assert ul.count(s, q(state="records_failed")) == 1
    with db.transaction() as s:
        upsert_person(s, PersonInput(3, "pa@example.com", make_id("001", 3), "Account"), T0)
        unsubscribe_email(s, "pa@example.com", source=Source.API, actor="t", now=T0)
    assert emails(db, q(object="Account")) == ["pa@example.com"]
