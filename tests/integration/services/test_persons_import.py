"""CSV import: good rows land, every bad row is reported with its line, re-import is a no-op."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from optsync.domain.ids import make_id
from optsync.errors import UsageError
from optsync.services.persons import import_persons, read_csv
from optsync.store.models import Person

C1 = make_id("003", 101)
C2 = make_id("003", 102)
L1 = make_id("00Q", 201)


def write(tmp_path: Path, text: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(db, path, clock, **kw):
    return import_persons(db, read_csv(path), now=clock(), **kw)


def test_good_and_bad_rows(db, clock, tmp_path):
    bad_prefix = make_id("001", 5)
    path = write(
        tmp_path,
        "\n".join(
            [
                "Email,Salesforce_Id,First_Name,Last_Name",
                f"ann@example.com,{C1},Ann,Lee",  # 2 ok
                f"bob@example.com,{L1[:15]},Bob,",  # 3 ok, 15-char id
                "not-an-email,,X,Y",  # 4 bad email
                "cat@example.com,003ABC,,",  # 5 wrong length
                f"dan@example.com,{C2[:15]}ZZZ,,",  # 6 wrong checksum
                f"eve@example.com,{bad_prefix},,",  # 7 wrong prefix
                "ANN@example.com,,,",  # 8 duplicate email
                f"fay@example.com,{C1},,",  # 9 duplicate id in file
                "",  # blank line skipped
                "gus@example.com,,,",  # 11 ok, unlinked
            ]
        ),
    )
    report = run(db, path, clock, chunk_size=3)
    assert (report.rows, report.created, len(report.rejected)) == (9, 3, 6)
    by_line = {e.line: e.reason for e in report.rejected}
    assert sorted(by_line) == [4, 5, 6, 7, 8, 9]
    assert by_line[4].startswith("email:")
    assert "15 or 18 characters" in by_line[5]
    assert "checksum" in by_line[6]
    assert "neither a Contact" in by_line[7]
    assert "duplicate of line 2" in by_line[8]
    assert "already used on line 2" in by_line[9]
    with db.transaction() as s:
        people = {p.email: p for p in s.scalars(select(Person))}
    assert set(people) == {"ann@example.com", "bob@example.com", "gus@example.com"}
    assert people["bob@example.com"].salesforce_id == L1
    assert people["bob@example.com"].salesforce_object == "Lead"
    assert people["ann@example.com"].salesforce_object == "Contact"
    assert people["gus@example.com"].salesforce_id is None


def test_reimport_changes_nothing(db, clock, tmp_path):
    path = write(tmp_path, f"email,salesforce_id\nann@example.com,{C1}\nbob@example.com,\n")
    first = run(db, path, clock)
    with db.transaction() as s:
        before = [(p.id, p.updated_at) for p in s.scalars(select(Person).order_by(Person.id))]
    clock.advance(hours=1)
    second = run(db, path, clock)
    assert (first.created, second.created, second.updated, second.unchanged) == (2, 0, 0, 2)
    with db.transaction() as s:
        after = [(p.id, p.updated_at) for p in s.scalars(select(Person).order_by(Person.id))]
    assert before == after


def test_links_and_names_update_existing_persons(db, clock, tmp_path):
    run(db, write(tmp_path, "email\nann@example.com\n", "a.csv"), clock)
    report = run(
        db,
        write(tmp_path, f"email,salesforce_id,first_name\nann@example.com,{C1},Ann\n", "b.csv"),
        clock,
    )
    assert (report.updated, report.linked) == (1, 1)
    # a row without an id never unlinks
    run(db, write(tmp_path, "email\nann@example.com\n", "c.csv"), clock)
    with db.transaction() as s:
        p = s.scalars(select(Person)).one()
    assert (p.salesforce_id, p.first_name) == (C1, "Ann")


def test_id_owned_by_another_person_is_rejected_not_moved(db, clock, tmp_path):
    run(db, write(tmp_path, f"email,salesforce_id\nann@example.com,{C1}\n", "a.csv"), clock)
    report = run(
        db, write(tmp_path, f"email,salesforce_id\nbob@example.com,{C1}\n", "b.csv"), clock
    )
    assert [e.line for e in report.rejected] == [2]
    assert "already linked to person" in report.rejected[0].reason
    with db.transaction() as s:
        assert s.scalar(select(func.count()).select_from(Person)) == 1


def test_lowercased_18_char_id_is_restored(db, clock, tmp_path):
    run(db, write(tmp_path, f"email,salesforce_id\nann@example.com,{C1.lower()}\n"), clock)
    with db.transaction() as s:
        assert s.scalars(select(Person.salesforce_id)).one() == C1


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty"), ("name,phone\nx,y\n", "no email column"), (b"email\n\xff\xfe\n", "UTF-8")],
)
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "f.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        list(read_csv(path))


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="cannot open"):
        list(read_csv(tmp_path / "nope.csv"))
