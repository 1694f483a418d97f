"""The one volume rule: REST below a threshold, Bulk API 2.0 from it; and the opted-out set.

Salesforce's own rule of thumb is to use the REST API for up to about 2,000 records and
Bulk API 2.0 beyond (a Bulk job costs a handful of calls whatever its size, but has a
fixed start-up time). Every path that reads or writes by volume — the sync's fetch, its
push and its later push rounds, and ``persons pull`` — asks :func:`use_bulk` with the
number of records at hand, so the paths cannot drift apart.

:func:`opted_out_where` is the one definition of "the records with the field set" that
the sync counts, queries by REST and queries by Bulk: converted Leads are excluded (they
are read-only; their Contact carries the opt-out).
"""

from __future__ import annotations

from optsync.salesforce import soql

BULK_THRESHOLD = 2_000
"""Records from which Bulk API 2.0 is used (Salesforce's own rule of thumb)."""


def use_bulk(count: int, threshold: int = BULK_THRESHOLD) -> bool:
    """Whether ``count`` records go through Bulk API 2.0 (``threshold``: tests force a path
    with 0 or a huge number)."""
    return count >= threshold


def opted_out_where(obj: str, field: str) -> str:
    """The SOQL ``WHERE`` of the object's records with ``field`` set."""
    where = f"{soql.field_name(field)} = true"
    if soql.object_name(obj) == "Lead":
        where += " AND IsConverted = false"
    return where


def opted_out_query(obj: str, field: str) -> str:
    """``SELECT Id`` of the object's records with ``field`` set."""
    return f"SELECT Id FROM {soql.object_name(obj)} WHERE {opted_out_where(obj, field)}"
