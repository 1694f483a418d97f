"""``optsync persons pull``: create or link persons from Salesforce Contacts and Leads.

A new installation starts linked: every Contact and unconverted Lead with an email
becomes a person (or links the existing person with that address). Contacts are pulled
before Leads and a linked person keeps its record, so when a Contact and a Lead share an
address the person is linked to the Contact. Re-running it changes nothing.

**REST or Bulk**, per object, by the one volume rule (:mod:`optsync.salesforce.volume`,
shared with the nightly sync): one ``SELECT COUNT()`` with the pull's own ``WHERE``
(:func:`optsync.salesforce.soql.people_where`); below ``bulk_threshold`` records the
REST query (pages of 2,000, one API call each), from it a Bulk API 2.0 query job (a
handful of calls whatever the size, rows streamed from CSV).
Both read the same fields with the same ``WHERE``, so they pull the same records.
Every record read also goes into the record mirror (``store.records``, issue 16) with
its address, so pushes and pulls by address know it.

**Order does not matter.** A Bulk query has no useful order (Salesforce advises against
``ORDER BY`` there: it disables PK chunking), so which of several records of one object
sharing an address links the person must not depend on the order records arrive in: the
record with the lowest Id wins, whatever the path. Each object is therefore read in two
passes: the records are validated and spooled to a temporary file while the winner of
each address is found (memory: one address and one Id per person), then the winners are
written in chunks, each chunk one transaction.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Literal

from optsync.domain.ids import InvalidSalesforceId, to_18
from optsync.salesforce import soql, volume
from optsync.salesforce.bulk import BulkApi
from optsync.salesforce.gateway import SalesforceGateway
from optsync.services.persons import (
    CHUNK_SIZE,
    ImportReport,
    PersonInput,
    RowError,
    refresh_statistics,
    upsert_chunk,
    validate_person,
)
from optsync.store.db import Database
from optsync.store.records import MirroredRecord, upsert_records

OBJECTS = ("Contact", "Lead")

Via = Literal["rest", "bulk"]


@dataclass
class PullReport(ImportReport):
    """One object's pull: the import counters, and how its records were read."""

    via: Via = "rest"


def pull_persons(
    db: Database,
    gateway: SalesforceGateway,
    *,
    now: datetime,
    objects: Iterable[str] = OBJECTS,
    progress: Callable[[str, int], None] | None = None,
    bulk_threshold: int = volume.BULK_THRESHOLD,
    bulk: BulkApi | None = None,
) -> dict[str, PullReport]:
    """Pull each object in turn; returns a report per object (rejected rows name the id).

    ``bulk_threshold``: records from which an object is read with a Bulk query job (tests
    force either path with 0 or a huge number); ``bulk``: the Bulk client to use (tests
    pass one that polls faster), by default one over ``gateway``.
    """
    wanted = set(objects)
    bulk = bulk or BulkApi(gateway)
    return {
        obj: _pull_object(
            db, gateway, bulk, obj, now=now, progress=progress, bulk_threshold=bulk_threshold
        )
        for obj in OBJECTS
        if obj in wanted
    }


def _records(
    gateway: SalesforceGateway, bulk: BulkApi, obj: str, bulk_threshold: int
) -> tuple[Via, Iterator[Mapping[str, Any]]]:
    """The object's records and the path that reads them, chosen by one ``COUNT()``."""
    if volume.use_bulk(bulk.count(obj, soql.people_where(obj)), bulk_threshold):
        return "bulk", bulk.query_records(soql.people_query(obj))
    return "rest", gateway.iter_people(obj)


def _pull_object(
    db: Database,
    gateway: SalesforceGateway,
    bulk: BulkApi,
    obj: str,
    *,
    now: datetime,
    progress: Callable[[str, int], None] | None,
    bulk_threshold: int,
) -> PullReport:
    via, records = _records(gateway, bulk, obj, bulk_threshold)
    report = PullReport(via=via)
    winners: dict[str, str] = {}  # address -> lowest Id of this object with it
    mirror: list[MirroredRecord] = []
    with tempfile.TemporaryFile("w+", newline="", encoding="utf-8") as spool:
        writer = csv.writer(spool)
        for n, rec in enumerate(records, start=1):
            report.rows += 1
            mirror.append(_mirrored(obj, rec))
            if len(mirror) >= CHUNK_SIZE:
                _mirror(db, mirror, now)
            checked = validate_person(
                n, rec.get("Email"), rec.get("Id"), rec.get("FirstName"), rec.get("LastName")
            )
            if isinstance(checked, RowError):
                report.rejected.append(
                    RowError(n, f"{obj} {rec.get('Id')}: {checked.reason}", checked.value)
                )
                continue
            sf_id = checked.salesforce_id or ""
            best = winners.get(checked.email)
            if best is None or sf_id < best:
                winners[checked.email] = sf_id
            writer.writerow(_spooled(checked))
        _mirror(db, mirror, now)
        spool.seek(0)
        chunk: list[PersonInput] = []
        for checked in _unspooled(spool):
            if winners[checked.email] != (checked.salesforce_id or ""):
                report.unchanged += 1  # another record of this object has the address
                continue
            chunk.append(checked)
            if len(chunk) >= CHUNK_SIZE:
                _flush(db, chunk, report, obj, now, progress)
        _flush(db, chunk, report, obj, now, progress)
    refresh_statistics(db)
    return report


def _mirrored(obj: str, rec: Mapping[str, Any]) -> MirroredRecord:
    """The record as the mirror keeps it: its address (the opt-out fields are not read
    here, so the mirror keeps what it knew of them)."""
    raw = str(rec.get("Id") or "")
    try:
        record_id = to_18(raw)
    except (InvalidSalesforceId, ValueError):
        record_id = raw
    return MirroredRecord(record_id, obj, rec.get("Email"))  # type: ignore[arg-type]


def _mirror(db: Database, records: list[MirroredRecord], now: datetime) -> None:
    """Write what the pull read into the record mirror (one transaction per chunk)."""
    valid = [r for r in records if len(r.record_id) == 18]
    records.clear()
    if valid:
        with db.transaction() as session:
            upsert_records(session, valid, now)


def _spooled(row: PersonInput) -> list[object]:
    return [
        row.line,
        row.email,
        row.salesforce_id,
        row.salesforce_object,
        row.first_name,
        row.last_name,
    ]


def _unspooled(spool: IO[str]) -> Iterator[PersonInput]:
    """Rows as :func:`_spooled` wrote them (csv writes None as empty; names are never
    empty strings after validation, so empty reads back as None)."""
    for line, email, sf_id, sf_object, first, last in csv.reader(spool):
        yield PersonInput(
            int(line), email, sf_id or None, sf_object or None, first or None, last or None
        )


def _flush(
    db: Database,
    chunk: list[PersonInput],
    report: ImportReport,
    obj: str,
    now: datetime,
    progress: Callable[[str, int], None] | None,
) -> None:
    if not chunk:
        return
    report.merge(upsert_chunk(db, chunk, now=now, keep_existing_links=True))
    if progress:
        progress(obj, len(chunk))
    chunk.clear()
