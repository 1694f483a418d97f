"""Finding every record of a batch of addresses in one Composite call, as pure code.

An opt-out belongs to the address, so a push looks up the Contacts, Leads and Person
Accounts whose email is one of the pushed addresses (docs/sync.md "Records per address").
One ``POST /composite`` carries one query subrequest per object, each with the same
``Email IN (…)`` list; Salesforce counts the whole call as one API request.

:func:`record_read` is the one place that names what a record of each object is made of
for optsync — which field holds the address (``Email``, a Person Account's
``PersonEmail``), which the opt-out (the synced field, or its ``Person…``/``__pc`` form),
what else is read, and which records count (a Person Account's hidden PersonContact,
which Contact queries also return, does not: optsync writes the Account). The lookup
here, the live pull's reads (``salesforce/replication.py``) and its change events
(``services/live_pull/stream.py``) all read records through it.

Each subrequest is a ``GET …/query?q=<SOQL>``, so two limits bound a batch:

* the URL of a subrequest must stay under 16,384 bytes (:data:`MAX_URL_BYTES`), computed
  exactly here on the URL-encoded text (an address costs its encoded length in every
  query of the call);
* an ``IN`` list is kept to a few hundred values (:data:`MAX_IN`) and a statement to
  100,000 characters (SOQL's limit; the URL limit is the tighter one).

:func:`plan_batches` cuts a list of addresses into batches that respect both;
:func:`lookup_request` builds the call's body and :func:`parse_records` turns a query
result into :class:`FoundRecord` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus

from simple_salesforce.format import format_soql

from optsync.domain.ids import to_18
from optsync.salesforce import soql

MAX_URL_BYTES = 16_384
"""A query subrequest's URL (path and query string) must be shorter than this."""
MAX_IN = 300
"""Addresses per ``IN (…)`` list: "a few hundred values"."""
MAX_SOQL_CHARS = 100_000


@dataclass(frozen=True)
class FoundRecord:
    """A record found by address. ``opted_out`` is the value of the synced field."""

    record_id: str
    object: str
    email: str | None
    opted_out: bool | None
    converted: bool = False
    system_modstamp: datetime | None = None


@dataclass(frozen=True)
class RecordRead:
    """How optsync reads one object's records for the synced ``field``."""

    object: str
    field: str
    """The synced field's API name (as on Contact and Lead)."""
    email_field: str
    """``Email``, or a Person Account's ``PersonEmail``."""
    opt_out_field: str
    """The synced field on this object (``soql.record_field``)."""
    fields: tuple[str, ...]
    """What a read selects: ``Id``, the address, the opt-out, [``IsConverted`` of a Lead,
    ``PersonContactId`` of a Person Account], ``SystemModstamp``."""
    where: str
    """The records that count (a constant): Person Accounts only, or no PersonContacts."""

    def canonical(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A row (or a change event's payload) under Contact's names (``Email``, the
        synced field, ``IsConverted``), as ``store.records.record_of`` reads them; a
        name absent from ``values`` stays absent (it was not read)."""
        out: dict[str, Any] = {}
        for own, common in (
            (self.email_field, "Email"),
            (self.opt_out_field, self.field),
            ("IsConverted", "IsConverted"),
        ):
            if own in values:
                out[common] = values[own]
        return out


def record_read(obj: str, field: str, *, person_accounts: bool) -> RecordRead:
    """How records of ``obj`` are read. Every Lead counts (converted ones too: the mirror
    learns they are converted, and a push skips them); Accounts only as Person Accounts;
    Contacts, in an org with Person Accounts, only when they are not a Person Account's
    hidden PersonContact."""
    f = soql.record_field(obj, field)
    email = "PersonEmail" if obj == "Account" else "Email"
    # a Person Account's PersonContactId names the Contact row a reader that did not know
    # the org's Person Accounts mirrored (the nightly drops it from the mirror)
    extra = {"Lead": ("IsConverted",), "Account": ("PersonContactId",)}.get(obj, ())
    names = ["Id", email, f, *extra, "SystemModstamp"]
    where = ""
    if obj == "Account":
        where = "IsPersonAccount = true"
    elif obj == "Contact" and person_accounts:
        where = "IsPersonAccount = false"
    return RecordRead(obj, field, email, f, tuple(names), where)


@dataclass(frozen=True)
class LookupQuery:
    """One object's query: the SOQL with ``{emails}`` still to fill, and its fields."""

    object: str
    head: str
    """``SELECT … FROM obj WHERE [<constant> AND] <email field> IN `` (the list follows)."""
    email_field: str
    opt_out_field: str


def lookup_queries(field: str, *, person_accounts: bool) -> list[LookupQuery]:
    """The queries of a lookup for the synced ``field``: Contacts, Leads, and Person
    Accounts when the org has them, each read as :func:`record_read` says."""
    out = []
    for obj in soql.record_objects(person_accounts):
        read = record_read(obj, field, person_accounts=person_accounts)
        where = f"{read.where} AND " if read.where else ""
        head = f"SELECT {', '.join(read.fields)} FROM {obj} WHERE {where}{read.email_field} IN "
        out.append(LookupQuery(obj, head, read.email_field, read.opt_out_field))
    return out


def _literal(email: str) -> str:
    return str(format_soql("{}", email))


def query_url(version: str, statement: str) -> str:
    """The subrequest's URL for ``statement`` (what its byte length is computed on)."""
    return f"/services/data/v{version}/query?q={quote_plus(statement)}"


def statement(query: LookupQuery, emails: Sequence[str]) -> str:
    return query.head + "(" + ",".join(_literal(e) for e in emails) + ")"


def plan_batches(
    emails: Sequence[str],
    queries: Sequence[LookupQuery],
    version: str,
    *,
    max_in: int = MAX_IN,
    max_url_bytes: int = MAX_URL_BYTES,
) -> list[list[str]]:
    """Cut ``emails`` (deduplicated, in order) into batches whose every query URL stays
    under ``max_url_bytes`` and whose ``IN`` lists hold at most ``max_in`` values.

    URL-encoding is per character, so a URL's length is its empty list's length plus each
    address's encoded literal and separator: the batches are computed exactly, without
    building the text for every candidate."""
    unique = list(dict.fromkeys(emails))
    if not queries:
        return []
    # the longest empty URL bounds them all (same list in every query of the call)
    bases = [len(query_url(version, q.head + "()").encode()) for q in queries]
    soql_bases = [len(q.head) + 2 for q in queries]
    comma = len(quote_plus(","))
    batches: list[list[str]] = []
    current: list[str] = []
    url = max(bases)
    chars = max(soql_bases)
    for email in unique:
        lit = _literal(email)
        cost = len(quote_plus(lit)) + (comma if current else 0)
        cost_chars = len(lit) + (1 if current else 0)
        if current and (
            len(current) >= max_in
            or url + cost >= max_url_bytes
            or chars + cost_chars > MAX_SOQL_CHARS
        ):
            batches.append(current)
            current, url, chars = [], max(bases), max(soql_bases)
            cost, cost_chars = len(quote_plus(lit)), len(lit)
        if url + cost >= max_url_bytes:
            raise ValueError("an address is too long for a lookup query")  # > 16 kB: cannot be
        current.append(email)
        url += cost
        chars += cost_chars
    if current:
        batches.append(current)
    return batches


def lookup_request(
    queries: Sequence[LookupQuery], emails: Sequence[str], version: str
) -> dict[str, Any]:
    """The ``POST /composite`` body: one query subrequest per object, independent of each
    other (``allOrNone`` false)."""
    return {
        "allOrNone": False,
        "compositeRequest": [
            {
                "method": "GET",
                "url": query_url(version, statement(q, emails)),
                "referenceId": q.object,
            }
            for q in queries
        ],
    }


def parse_records(query: LookupQuery, rows: Sequence[dict[str, Any]]) -> list[FoundRecord]:
    """Query rows as :class:`FoundRecord` values (ids in 18-character form)."""
    out = []
    for row in rows:
        value = row.get(query.opt_out_field)
        out.append(
            FoundRecord(
                record_id=to_18(str(row["Id"])),
                object=query.object,
                email=row.get(query.email_field),
                opted_out=bool(value) if value is not None else None,
                converted=bool(row.get("IsConverted")) if query.object == "Lead" else False,
                system_modstamp=_stamp(row.get("SystemModstamp")),
            )
        )
    return out


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    text = str(value)
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
