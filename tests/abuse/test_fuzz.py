"""Fuzzing the two parsers that take input from anyone: link tokens and CSV files."""

from __future__ import annotations

import contextlib
import string
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from optsync.domain.emails import normalise_email
from optsync.domain.ids import to_18
from optsync.errors import UsageError
from optsync.services.links import InvalidLinkToken, UnsubscribeLinks
from optsync.services.persons import import_persons, read_csv
from optsync.store.db import Database
from optsync.store.models import Person

LINKS = UnsubscribeLinks("a-secret-key-for-tests", "https://optsync.example")
OTHER = UnsubscribeLinks("another-installation", "https://optsync.example")
TOKEN_CHARS = string.ascii_letters + string.digits + "-_."


@given(st.text(max_size=300))
def test_any_text_is_either_a_valid_token_or_refused(token):
    try:
        pid = LINKS.person_id(token)
    except InvalidLinkToken:
        return
    assert isinstance(pid, int) and pid >= 1 and LINKS.token(pid) == token


@given(st.integers(min_value=1, max_value=2**62), st.data())
def test_tampered_tokens_are_refused(person_id, data):
    token = LINKS.token(person_id)
    assert LINKS.person_id(token) == person_id
    i = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.sampled_from(TOKEN_CHARS).filter(lambda c: c != token[i]))
    flipped = token[:i] + replacement + token[i + 1 :]
    for bad in (flipped, token[:i], token + "x", OTHER.token(person_id)):
        try:
            got = LINKS.person_id(bad)
        except InvalidLinkToken:
            continue
        # base64 padding quirks may decode the same bytes; they must name the same person
        assert got == person_id


ROWS = st.lists(
    st.tuples(
        st.one_of(st.emails(), st.text(max_size=40)),
        st.one_of(
            st.just(""),
            st.text(alphabet=string.ascii_letters + string.digits, min_size=14, max_size=19),
        ),
        st.text(max_size=30),
    ),
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=ROWS, raw=st.binary(max_size=200))
def test_csv_import_never_stores_bad_data_nor_crashes(tmp_path_factory, rows, raw):
    tmp = tmp_path_factory.mktemp("fuzz")
    db = Database(f"sqlite:///{tmp / 'f.db'}")
    db.upgrade()
    path: Path = tmp / "in.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8", errors="surrogatepass") as fh:
        w = csv.writer(fh)
        w.writerow(["email", "salesforce_id", "first_name"])
        for row in rows:
            with contextlib.suppress(UnicodeEncodeError):
                w.writerow(row)
    for target in (path, tmp / "raw.csv"):
        if target.name == "raw.csv":
            target.write_bytes(b"email\n" + raw)
        try:
            report = import_persons(db, read_csv(target), now=datetime.now(UTC))
        except UsageError:
            continue  # an unreadable file is refused as a whole, with the reason
        # every row read is accounted for: stored, unchanged, or rejected with a line number
        assert report.rows == (
            report.created + report.updated + report.unchanged + len(report.rejected)
        )
        assert all(e.line >= 2 for e in report.rejected)
    with db.transaction() as s:
        for person in s.scalars(select(Person)):
            assert normalise_email(person.email) == person.email
            if person.salesforce_id:
                assert to_18(person.salesforce_id) == person.salesforce_id
    db.dispose()
