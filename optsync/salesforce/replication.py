"""The REST calls of the live pull's poller: ``sobjects/{type}/updated`` windows and a
read of the changed records' opt-out field, through the gateway (counted, renewed,
translated, with the gateway's timeouts).

``/deleted`` is not called: a deletion never opts anyone out, and a record undeleted
with the field set is stamped anew, so it shows up in ``/updated``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simple_salesforce.api import Salesforce

from optsync.domain.ids import to_18
from optsync.salesforce import soql
from optsync.salesforce.gateway import SalesforceGateway
from optsync.salesforce.lookup import record_read
from optsync.store.records import MirroredRecord, record_of


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_sf_datetime(text: str) -> datetime:
    """A Salesforce dateTime (``2026-12-08T12:30:00.000+0000``) as aware UTC."""
    raw = text.strip().replace("Z", "+00:00")
    m = re.match(r"^(.*)([+-]\d{2}):?(\d{2})$", raw)
    if m:
        raw = f"{m.group(1)}{m.group(2)}:{m.group(3)}"
    value = datetime.fromisoformat(raw)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def updated_ids(
    gateway: SalesforceGateway, obj: str, start: datetime, end: datetime
) -> tuple[list[str], datetime]:
    """Ids of ``obj`` records stamped in ``[start, end)`` and ``latestDateCovered`` (the
    next window's start: Salesforce holds it back to the start of a long transaction)."""
    name = soql.object_name(obj)
    path = f"sobjects/{name}/updated/"
    params = {"start": _iso(start), "end": _iso(end)}
    answer: Any = gateway.call(
        f"sobjects/{name}/updated",
        lambda sf: sf.restful(path, params=params, timeout=gateway.timeout),
    )
    ids = [str(i) for i in (answer or {}).get("ids", [])]
    covered = (answer or {}).get("latestDateCovered")
    return ids, parse_sf_datetime(covered) if covered else end


@dataclass(frozen=True)
class FieldValue:
    record_id: str
    value: Any
    stamp: datetime


def read_field(
    gateway: SalesforceGateway, obj: str, ids: Sequence[str], field: str
) -> Iterator[FieldValue]:
    """``field`` and ``SystemModstamp`` of these records (deleted
    and converted Leads left out, as the nightly sync leaves them out)."""
    name = soql.object_name(obj)
    where = "IsConverted = false" if name == "Lead" else ""
    fields = ["Id", soql.field_name(field), "SystemModstamp"]
    for chunk in soql.chunks(soql.record_ids(ids, name)):
        query = soql.select_by_ids(fields, name, chunk, where=where)
        page: Any = gateway.call("query", _query(query, gateway))
        while True:
            for rec in page.get("records", []):
                yield FieldValue(
                    to_18(str(rec["Id"])),
                    rec.get(field),
                    parse_sf_datetime(str(rec["SystemModstamp"])),
                )
            url = page.get("nextRecordsUrl")
            if page.get("done", True) or not url:
                break
            page = gateway.call("query", _more(str(url), gateway))


def record_fields(obj: str, field: str, *, person_accounts: bool = False) -> list[str]:
    """The fields a mirror read selects (``Id, Email, <field>, [IsConverted,]
    SystemModstamp``; a Person Account's ``PersonEmail`` and field form), names checked
    (:func:`optsync.salesforce.lookup.record_read`)."""
    name = soql.object_name(obj)
    return list(record_read(name, field, person_accounts=person_accounts).fields)


def mirrored(obj: str, field: str, rec: dict[str, Any]) -> MirroredRecord:
    """A row of a mirror read (REST JSON or Bulk CSV) as a :class:`MirroredRecord`.
    Salesforce answers with canonical 18-character ids, taken as they are (a full
    re-mirror reads every record of the org: no per-row checksum); a 15-character one is
    completed. An Account row carries the person fields (``PersonEmail``, …)."""
    raw = str(rec["Id"])
    stamp = rec.get("SystemModstamp")
    values = rec
    if obj == "Account":
        values = record_read(obj, field, person_accounts=True).canonical(rec)
    return record_of(
        raw if len(raw) == 18 else to_18(raw),
        obj,  # type: ignore[arg-type]
        field,
        values,
        stamp=_stamp(str(stamp)) if stamp else None,
    )


def _stamp(text: str) -> datetime:
    """``parse_sf_datetime`` fast for the form Salesforce sends (``…000+0000`` or ``Z``)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return parse_sf_datetime(text)
    if value.tzinfo is UTC:  # Bulk CSV's "Z": already what the mirror keeps
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def changed_where(since: datetime | None) -> str:
    """The ``WHERE`` of a mirror read: every record (``since`` None: a full re-mirror), or
    those stamped after ``since`` (the nightly's incremental pass)."""
    if since is None:
        return "Id != null"
    at = since.astimezone(UTC)
    # milliseconds, as SystemModstamp holds them (a SOQL dateTime literal accepts them)
    return f"SystemModstamp > {at:%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"


def mirror_where(obj: str, since: datetime | None, *, person_accounts: bool = False) -> str:
    """The ``WHERE`` of a mirror read of ``obj``: the records that count
    (:func:`~optsync.salesforce.lookup.record_read`) among :func:`changed_where`'s; the
    same for the ``COUNT()`` that picks REST or Bulk and for the read."""
    read = record_read(soql.object_name(obj), "HasOptedOutOfEmail", person_accounts=person_accounts)
    return f"{read.where} AND {changed_where(since)}" if read.where else changed_where(since)


def mirror_query(
    obj: str, field: str, since: datetime | None, *, person_accounts: bool = False
) -> str:
    """``SELECT Id, Email, <field>, [IsConverted,] SystemModstamp FROM obj WHERE …``,
    unordered (a Bulk query job disables PK chunking with ORDER BY). Account reads Person
    Accounts only; with ``person_accounts`` (the org has them) Contact leaves out their
    hidden PersonContacts."""
    name = soql.object_name(obj)
    read = record_read(name, field, person_accounts=person_accounts)
    where = mirror_where(name, since, person_accounts=person_accounts)
    return f"SELECT {', '.join(read.fields)} FROM {name} WHERE {where}"


def person_contact(rec: dict[str, Any]) -> str | None:
    """The hidden PersonContact of a Person Account row (18 characters), if any."""
    raw = rec.get("PersonContactId")
    return to_18(str(raw)) if raw else None


def read_records(
    gateway: SalesforceGateway, obj: str, ids: Sequence[str], field: str
) -> Iterator[MirroredRecord]:
    """These records as the mirror keeps them: address, synced field, conversion and
    ``SystemModstamp`` (converted Leads included: the mirror notes they cannot be set).
    Deleted records are simply absent, and so are records that do not count
    (:func:`~optsync.salesforce.lookup.record_read`: a business Account, a Person
    Account's hidden PersonContact; whether the org has Person Accounts is asked once
    per gateway)."""
    name = soql.object_name(obj)
    person_accounts = name == "Account" or (name == "Contact" and gateway.has_person_accounts())
    read = record_read(name, field, person_accounts=person_accounts)
    for chunk in soql.chunks(soql.record_ids(ids, name)):
        query = soql.select_by_ids(read.fields, name, chunk, where=read.where)
        page: Any = gateway.call("query", _query(query, gateway))
        while True:
            for rec in page.get("records", []):
                yield mirrored(name, field, rec)
            url = page.get("nextRecordsUrl")
            if page.get("done", True) or not url:
                break
            page = gateway.call("query", _more(str(url), gateway))


def _query(query: str, gateway: SalesforceGateway) -> Callable[[Salesforce], Any]:
    def run(sf: Salesforce) -> Any:
        return sf.query(query, timeout=gateway.timeout)

    return run


def _more(url: str, gateway: SalesforceGateway) -> Callable[[Salesforce], Any]:
    def run(sf: Salesforce) -> Any:
        return sf.query_more(url, identifier_is_url=True, timeout=gateway.timeout)

    return run
