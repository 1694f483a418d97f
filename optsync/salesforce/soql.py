"""Building SOQL safely: names are checked, values are quoted.

SOQL has no bind parameters, so every query optsync builds is text. Two rules keep it
injection-proof: identifiers (object and field API names) must match the API-name
grammar before they are placed in the text, and every value (ids) goes through
simple-salesforce's :func:`format_soql`, which quotes and escapes it. Record ids are
additionally normalised with :func:`optsync.domain.ids.to_18` first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

from simple_salesforce.format import format_soql

from optsync.domain.ids import InvalidSalesforceId, record_object, to_18
from optsync.errors import UsageError

OBJECTS = ("Contact", "Lead")
"""The objects the sync and the pulls loop over."""
RECORD_OBJECTS = ("Contact", "Lead", "Account")
"""Every object whose records carry an address: Person Accounts are Accounts."""
PERSON_ACCOUNT = "IsPersonAccount"
"""The flag of a Person Account (on Account) and of its hidden PersonContact (on Contact);
the field exists only in an org with Person Accounts."""
IN_CHUNK = 200
"""Ids per ``IN (...)`` list: well inside SOQL's 100,000-character statement limit."""

# Standard names (HasOptedOutOfEmail), custom (Sales_Opt_Out__c) and namespaced
# (ns__Sales_Opt_Out__c): letters, digits and single underscores, starting with a letter.
_WORD = r"[A-Za-z](?:[A-Za-z0-9]|_(?!_))*"
FIELD_RE = re.compile(rf"(?:{_WORD}__)?{_WORD}(?<!_)(?:__c)?")  # fullmatch only
MAX_FIELD_LENGTH = 80


def field_name(value: str) -> str:
    """Return ``value`` if it is a valid field API name, else raise ``UsageError``."""
    if not isinstance(value, str) or len(value) > MAX_FIELD_LENGTH or not FIELD_RE.fullmatch(value):
        raise UsageError(
            f"{value!r} is not a Salesforce field API name.",
            field="field",
            fix="Use the field's API name, e.g. HasOptedOutOfEmail or Sales_Opt_Out__c.",
        )
    return value


def object_name(value: str) -> str:
    """Only Contact, Lead and Account (Person Accounts) are synced; anything else is a
    caller bug."""
    if value not in RECORD_OBJECTS:
        raise UsageError(
            f"{value!r} is not a synced Salesforce object.",
            field="object",
            fix="Use Contact, Lead or Account.",
        )
    return value


def record_objects(person_accounts: bool) -> tuple[str, ...]:
    """The objects whose records carry an address in this org: Contact and Lead, and
    Account when the org has Person Accounts (in that order: the order of every read
    and write across them)."""
    return RECORD_OBJECTS if person_accounts else OBJECTS


def record_ids(values: Sequence[str], obj: str | None = None) -> list[str]:
    """Validate and normalise ids to 18 characters (optionally of one object), de-duplicated."""
    out: dict[str, None] = {}
    for value in values:
        try:
            id18 = to_18(value)
            if obj is not None and record_object(id18) != obj:
                raise InvalidSalesforceId(f"it is not a {obj} id")
        except InvalidSalesforceId as exc:
            raise UsageError(f"Salesforce id {value!r} is invalid: {exc}.", field="id") from None
        out[id18] = None
    return list(out)


PEOPLE_FIELDS = ("Id", "Email", "FirstName", "LastName")
"""What ``persons pull`` reads of a Contact or Lead."""


def people_where(obj: str) -> str:
    """The records ``persons pull`` turns into persons: those with an email, and of Leads
    only the unconverted ones (a converted Lead's person is its Contact).

    One definition for the ``COUNT()``, the REST query and the Bulk query job, so the
    count that picks the path and the records either path reads cannot drift apart.
    """
    return "Email != null" + (" AND IsConverted = false" if object_name(obj) == "Lead" else "")


def people_query(obj: str) -> str:
    """``SELECT Id, Email, FirstName, LastName FROM obj WHERE <people_where>``, unordered
    (Bulk API 2.0 advises against ORDER BY: it disables PK chunking)."""
    return f"SELECT {', '.join(PEOPLE_FIELDS)} FROM {object_name(obj)} WHERE {people_where(obj)}"


def chunks(values: Sequence[str], size: int = IN_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def select_by_ids(fields: Sequence[str], obj: str, ids: Sequence[str], where: str = "") -> str:
    """``SELECT <fields> FROM <obj> WHERE Id IN (...) [AND <where>]`` with checked names.

    ``where`` must be a constant written in optsync's code, never user input.
    """
    names = ", ".join(field_name(f) for f in fields)
    soql = format_soql(f"SELECT {names} FROM {object_name(obj)} WHERE Id IN {{ids}}", ids=list(ids))
    return f"{soql} AND {where}" if where else soql


def record_field(obj: str, field: str) -> str:
    """The API name of the opt-out ``field`` on ``obj``: a Person Account carries the
    person's fields on the Account, standard ones with the ``Person`` prefix
    (``PersonHasOptedOutOfEmail``), custom contact fields with the suffix ``__pc``
    (``Sales_Opt_Out__pc``). optsync writes the Account, never its hidden PersonContact."""
    field_name(field)
    if object_name(obj) != "Account":
        return field
    if field.endswith("__c"):
        return field[: -len("__c")] + "__pc"
    return "Person" + field
