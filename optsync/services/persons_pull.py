"""``optsync persons pull``: create or link persons from Salesforce Contacts and Leads.

A new installation starts linked: every Contact and unconverted Lead with an email
becomes a person (or links the existing person with that address). Contacts are pulled
before Leads and a linked person keeps its record, so when a Contact and a Lead share an
address the person is linked to the Contact. Re-running it changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

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

OBJECTS = ("Contact", "Lead")


def pull_persons(
    db: Database,
    gateway: SalesforceGateway,
    *,
    now: datetime,
    objects: Iterable[str] = OBJECTS,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, ImportReport]:
    """Pull each object in turn; returns a report per object (rejected rows name the id)."""
    wanted = set(objects)
    return {
        obj: _pull_object(db, gateway, obj, now=now, progress=progress)
        for obj in OBJECTS
        if obj in wanted
    }


def _pull_object(
    db: Database,
    gateway: SalesforceGateway,
    obj: str,
    *,
    now: datetime,
    progress: Callable[[str, int], None] | None,
) -> ImportReport:
    report = ImportReport()
    seen: set[str] = set()
    chunk: list[PersonInput] = []
    for n, rec in enumerate(gateway.iter_people(obj), start=1):
        report.rows += 1
        checked = validate_person(
            n, rec.get("Email"), rec.get("Id"), rec.get("FirstName"), rec.get("LastName")
        )
        if isinstance(checked, RowError):
            report.rejected.append(
                RowError(n, f"{obj} {rec.get('Id')}: {checked.reason}", checked.value)
            )
            continue
        if checked.email in seen:  # two records of one object share an address
            report.unchanged += 1
            continue
        seen.add(checked.email)
        chunk.append(checked)
        if len(chunk) >= CHUNK_SIZE:
            _flush(db, chunk, report, obj, now, progress)
    _flush(db, chunk, report, obj, now, progress)
    refresh_statistics(db)
    return report


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
