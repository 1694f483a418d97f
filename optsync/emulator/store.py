"""The emulated org's data: Accounts, Contacts and Leads in SQLite, with Salesforce's write rules.

Why SQLite: it persists the org across restarts in one file (or lives in memory for
tests), it evaluates compiled SOQL over a million rows quickly, and ``executemany`` lets
seeding stream rows without building them all in memory.

One connection is shared by the event loop and the Bulk worker thread, so every access
goes through ``self.lock``; each operation is short (one statement or one batch). The
table's ``rowid`` is also the number inside the record id, which makes ids stable and
lets queries remember their results as compact arrays of rowids.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from random import Random
from typing import Any

from optsync.emulator.errors import SalesforceError
from optsync.emulator.ids import BadId, canonical, new_id
from optsync.emulator.schema import (
    ACCOUNT,
    CONTACT,
    DATA_OBJECTS,
    KEY_PREFIX,
    LEAD,
    NUMERIC,
    OBJECT_OF_PREFIX,
    OBJECTS,
    ORG_ID,
    ORGANIZATION,
    PERSON_RECORD_TYPE_ID,
    SALES_OPT_OUT,
    USER,
    USER_ID,
    FieldDef,
    fields_of,
    person_field_map,
    stored_fields,
)
from optsync.emulator.soql import CompiledQuery, format_datetime, parse_datetime, resolve_path

_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")  # fullmatch only
_DELETED_COL = "DeletedDate_"  # internal: when the record went to the recycle bin
_SEED_CHUNK = 20_000
_FETCH_CHUNK = 2_000
SEED_IDS_MAX = 10_000
_FIRST_NAMES = (
    "Ann",
    "Bob",
    "Chen",
    "Dana",
    "Eve",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kemi",
    "Lars",
    "Mia",
    "Nils",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
)
_LAST_NAMES = (
    "Smith",
    "Garcia",
    "Nguyen",
    "Okafor",
    "Muller",
    "Rossi",
    "Kowalski",
    "Tanaka",
    "Silva",
    "Haddad",
    "Novak",
    "Jensen",
    "Dubois",
    "Ivanova",
    "Patel",
    "Moreau",
)
_COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell")


def not_found() -> SalesforceError:
    return SalesforceError(404, "NOT_FOUND", "The requested resource does not exist")


def entity_is_deleted() -> SalesforceError:
    return SalesforceError(404, "ENTITY_IS_DELETED", "entity is deleted")


def person_contact_readonly() -> SalesforceError:
    """A person contact is written through its person account, never directly."""
    return SalesforceError(
        400, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id"
    )


def bad_person_fields(kind: str, names: list[str]) -> SalesforceError:
    """Person fields on a business account, or ``Name`` on a person account."""
    return SalesforceError(
        400,
        "INVALID_FIELD_FOR_INSERT_UPDATE",
        f"{kind} Account: bad field names on insert/update call: {', '.join(names)}",
        names,
    )


def malformed_id(obj: str | None, value: str) -> SalesforceError:
    if obj and re.fullmatch(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?", value):
        return SalesforceError(
            400, "MALFORMED_ID", f"{obj} ID: id value of incorrect type: {value}", ["Id"]
        )
    return SalesforceError(400, "MALFORMED_ID", f"malformed id {value}", ["Id"])


def parse_record_id(value: str, obj: str | None = None) -> tuple[str, str]:
    """Validate an id (15 or 18 chars) for ``obj`` (any known object if None).

    Returns ``(object, 18-char id)``; anything else is ``MALFORMED_ID`` as on Salesforce.
    """
    try:
        id18 = canonical(value)
    except BadId:
        raise malformed_id(obj, value) from None
    actual = OBJECT_OF_PREFIX.get(id18[:3])
    if actual is None or (obj is not None and actual != obj):
        raise malformed_id(obj, value)
    return actual, id18


def _sql_type(f: FieldDef) -> str:
    if f.is_boolean:
        return "INTEGER NOT NULL DEFAULT 0"
    if f.type == "int":
        return "INTEGER"
    if f.type in NUMERIC:
        return "REAL"
    if f.is_string and f.type not in ("id", "reference"):
        return "TEXT COLLATE NOCASE"
    return "TEXT"


def _decode(f: FieldDef, v: Any) -> Any:
    """A stored value as the REST API shows it (booleans, numbers, compound JSON)."""
    if f.is_boolean:
        return bool(v)
    if v is None:
        return None
    if f.type == "address":
        return json.loads(v)
    if f.type == "int":
        return int(v)
    if f.type in NUMERIC:
        return float(v)
    return v


@dataclass
class SeedResult:
    """What ``seed`` made: ids (None above ``SEED_IDS_MAX`` records) and the duplicates,
    as (duplicate id, id of the record whose address it carries) pairs."""

    contact_ids: list[str] | None
    lead_ids: list[str] | None
    person_account_ids: list[str] | None
    duplicates: int
    duplicate_ids: list[tuple[str, str]] | None


def _seed_identity(num: int, tag: str) -> tuple[str, str, str]:
    """The generated first name, last name and address of seeded record ``num``."""
    first = _FIRST_NAMES[num % len(_FIRST_NAMES)]
    last = _LAST_NAMES[(num // 7) % len(_LAST_NAMES)]
    return first, last, f"{first}.{last}.{tag}{num}@example.com".lower()


def _unit(num: int, salt: int) -> float:
    """A well-mixed number in [0, 1) from ``num`` (a 32-bit integer hash)."""
    h = (num * 0x9E3779B1 + salt) & 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h / 4294967296.0


def _case_variant(email: str) -> str:
    """The same address as people type it: ``Ann.Smith.C12@Example.com``."""
    local, _, domain = email.partition("@")
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


def _insert_sql(obj: str, cols: list[str]) -> str:
    names = ", ".join(f'"{c}"' for c in cols)
    return f'INSERT INTO "{obj}" (rowid, {names}) VALUES (?, {", ".join("?" for _ in cols)})'


def _last_name_missing() -> SalesforceError:
    return SalesforceError(
        400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", ["LastName"]
    )


def _person_name(first: Any, last: Any) -> str:
    return " ".join(str(p) for p in (first, last) if p)


@dataclass
class FieldAccess:
    """Field-level security of one field for the integration user."""

    visible: bool = True
    updateable: bool = True


class OrgStore:
    """Contacts and Leads with Salesforce's validation, FLS and audit-field rules."""

    def __init__(
        self,
        path: str,
        *,
        sales_opt_out: bool = True,
        person_accounts: bool = False,
        username: str = "integration@optsync-emulator.example",
    ):
        self.path = path
        self.username = username
        self.sales_opt_out = sales_opt_out
        self.person_accounts = person_accounts
        self._startup_person_accounts = person_accounts
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._tx_depth = 0
        self._last_stamp_ms = 0
        self._schema_changed: dict[str, datetime] = {}
        self._fields: dict[str, dict[str, FieldDef]] = {}
        self._by_lower: dict[str, dict[str, FieldDef]] = {}
        self._load_fields()
        self._tx_stamp: str | None = None
        self._access: dict[tuple[str, str], FieldAccess] = {}
        self._next_num: dict[str, int] = {}
        # Change Data Capture hook (optsync/emulator/pubsub): called after every commit.
        self.change_listeners: list[Callable[[], None]] = []
        with self.lock:
            self._init_schema()

    # ----------------------------------------------------------------- set-up
    def _init_schema(self) -> None:
        c = self.conn
        if self.path != ":memory:":
            # WAL + NORMAL: commits do not fsync, yet a crash never corrupts the file.
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=NORMAL")
        c.execute("PRAGMA temp_store=MEMORY")
        c.execute("PRAGMA cache_size=-65536")
        for obj in OBJECTS:
            columns = {f.name: _sql_type(f) for f in stored_fields(obj) if f.name != "Id"}
            columns.setdefault("IsDeleted", "INTEGER NOT NULL DEFAULT 0")
            columns[_DELETED_COL] = "TEXT"
            cols = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
            c.execute(
                f'CREATE TABLE IF NOT EXISTS "{obj}" (rowid INTEGER PRIMARY KEY, '
                f'"Id" TEXT NOT NULL UNIQUE, {cols})'
            )
            # An org file from an older emulator gains the standard fields added since.
            have = {r[1] for r in c.execute(f'PRAGMA table_info("{obj}")')}
            for name, kind in columns.items():
                if name not in have:
                    c.execute(f'ALTER TABLE "{obj}" ADD COLUMN "{name}" {kind}')
            for col in ("Email", "SystemModstamp", "AccountId"):
                if col in columns:
                    c.execute(
                        f'CREATE INDEX IF NOT EXISTS "{obj}_{col.lower()}" ON "{obj}" ("{col}")'
                    )
        self._add_system_records()
        c.execute(
            "CREATE TABLE IF NOT EXISTS fls (obj TEXT, field TEXT, visible INTEGER, "
            "updateable INTEGER, PRIMARY KEY (obj, field))"
        )
        for obj, fld, vis, upd in c.execute("SELECT obj, field, visible, updateable FROM fls"):
            self._access[(obj, fld)] = FieldAccess(bool(vis), bool(upd))
        now = datetime.now(UTC).replace(microsecond=0)
        for obj in OBJECTS:
            self._schema_changed[obj] = now
            self._next_num[obj] = (
                c.execute(f'SELECT max(rowid) FROM "{obj}"').fetchone()[0] or 0
            ) + 1

    def _add_system_records(self) -> None:
        """The integration user and the organization, so identity and audit ids resolve."""
        stamp = format_datetime(datetime(2024, 1, 2, 9, 0, tzinfo=UTC))
        audit = {
            "CreatedDate": stamp,
            "CreatedById": USER_ID,
            "LastModifiedDate": stamp,
            "LastModifiedById": USER_ID,
            "SystemModstamp": stamp,
        }
        records = {
            USER: {
                "Id": USER_ID,
                "Username": self.username,
                "FirstName": "Integration",
                "LastName": "User",
                "CompanyName": "optsync emulator",
                "Email": self.username,
                "Alias": "integ",
                "IsActive": 1,
                "TimeZoneSidKey": "GMT",
                "LocaleSidKey": "en_US",
                "LanguageLocaleKey": "en_US",
                "UserType": "Standard",
                **audit,
            },
            ORGANIZATION: {
                "Id": ORG_ID,
                "Name": "optsync emulator",
                "OrganizationType": "Developer Edition",
                "InstanceName": "EMU1",
                "IsSandbox": 0,
                "LanguageLocaleKey": "en_US",
                "TimeZoneSidKey": "GMT",
                "DefaultLocaleSidKey": "en_US",
                **audit,
            },
        }
        for obj, row in records.items():
            cols = ", ".join(f'"{k}"' for k in row)
            marks = ", ".join("?" for _ in row)
            self.conn.execute(
                f'INSERT OR REPLACE INTO "{obj}" (rowid, {cols}) VALUES (1, {marks})',
                tuple(row.values()),
            )
            self._next_num[obj] = 2

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def reset(self) -> None:
        """Empty the org and restore default field-level security."""
        with self.lock:
            for obj in OBJECTS:
                self.conn.execute(f'DELETE FROM "{obj}"')
                self._next_num[obj] = 1
            self._add_system_records()
            self.conn.execute("DELETE FROM fls")
            self._access.clear()
            self.person_accounts = self._startup_person_accounts
            self._load_fields()
            now = datetime.now(UTC).replace(microsecond=0)
            for obj in OBJECTS:
                self._schema_changed[obj] = now

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit (nestable); used by allOrNone collections and Bulk batches."""
        with self.lock:
            outer = self._tx_depth == 0
            if outer:
                self.conn.execute("BEGIN IMMEDIATE")
            self._tx_depth += 1
            try:
                yield
            except BaseException:
                self._tx_depth -= 1
                if outer:
                    self._tx_stamp = None
                    self.conn.execute("ROLLBACK")
                raise
            self._tx_depth -= 1
            if outer:
                self._tx_stamp = None
                self.conn.execute("COMMIT")
                for listener in self.change_listeners:  # CDC hook: the commit is done
                    listener()

    def stamp(self) -> str:
        """A strictly increasing write timestamp, so every write moves SystemModstamp.

        Inside a transaction (a collection request, a Bulk batch) every write shares the
        transaction's stamp, as records saved together do on Salesforce.
        """
        with self.lock:
            if self._tx_depth and self._tx_stamp is not None:
                return self._tx_stamp
            ms = int(time.time() * 1000)
            if ms <= self._last_stamp_ms:
                ms = self._last_stamp_ms + 1
            self._last_stamp_ms = ms
            stamp = format_datetime(datetime.fromtimestamp(ms / 1000, UTC))
            if self._tx_depth:
                self._tx_stamp = stamp
        return stamp

    # ----------------------------------------------------------------- metadata / FLS
    def _load_fields(self) -> None:
        self._fields = {
            o: fields_of(o, sales_opt_out=self.sales_opt_out, person_accounts=self.person_accounts)
            for o in OBJECTS
        }
        self._by_lower = {
            o: {n.lower(): f for n, f in fs.items()} for o, fs in self._fields.items()
        }
        self._person_map = person_field_map(sales_opt_out=self.sales_opt_out)
        columns = {f.name for f in stored_fields(ACCOUNT)}
        self._person_columns = {a: c for a, c in self._person_map.items() if a in columns}

    def set_person_accounts(self, enabled: bool) -> None:
        """Turn the Person Accounts org option on or off (Account and Contact change shape).

        As on Salesforce, it cannot be turned off once person accounts exist.
        """
        with self.lock:
            if enabled == self.person_accounts:
                return
            if (
                not enabled
                and self.conn.execute(
                    'SELECT 1 FROM "Account" WHERE "IsPersonAccount" = 1 LIMIT 1'
                ).fetchone()
            ):
                raise ValueError(
                    "person accounts exist, so Person Accounts cannot be turned off; "
                    "reset the org first"
                )
            self.person_accounts = enabled
            self._load_fields()
            now = datetime.now(UTC).replace(microsecond=0)
            for obj in (ACCOUNT, CONTACT):
                self._schema_changed[obj] = now

    def all_fields(self, obj: str) -> dict[str, FieldDef]:
        return self._fields[obj]

    def access(self, obj: str, name: str) -> FieldAccess:
        return self._access.get((obj, name), FieldAccess())

    def visible_fields(self, obj: str) -> dict[str, FieldDef]:
        """The fields the integration user can see (hidden ones are simply absent)."""
        return {n: f for n, f in self._fields[obj].items() if self.access(obj, n).visible}

    def updateable(self, obj: str, f: FieldDef) -> bool:
        acc = self.access(obj, f.name)
        return f.system_updateable and acc.visible and acc.updateable

    def schema_changed_at(self, obj: str) -> datetime:
        return self._schema_changed[obj]

    def set_field_access(self, obj: str, name: str, *, visible: bool, updateable: bool) -> None:
        """Change FLS; ``Id`` and required name fields cannot be restricted (as in Setup)."""
        canonical = {o.lower(): o for o in OBJECTS}.get(obj.lower())
        if canonical is None:
            raise KeyError(f"unknown object {obj!r}")
        fields = {n.lower(): f for n, f in self._fields[canonical].items()}
        f = fields.get(name.lower())
        if f is None:
            raise KeyError(f"unknown field {name!r} on {canonical}")
        if f.name == "Id" or f.required_on_create:
            raise ValueError(f"{f.name} is required and its field-level security is fixed")
        with self.lock:
            self._access[(canonical, f.name)] = FieldAccess(visible, updateable)
            self.conn.execute(
                "INSERT OR REPLACE INTO fls VALUES (?, ?, ?, ?)",
                (canonical, f.name, int(visible), int(updateable)),
            )
            self._schema_changed[canonical] = datetime.now(UTC).replace(microsecond=0)

    # ----------------------------------------------------------------- reads
    def _row(self, obj: str, id18: str) -> dict[str, Any] | None:
        cur = self.conn.execute(f'SELECT * FROM "{obj}" WHERE "Id" = ?', (id18,))
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip((d[0] for d in cur.description), row, strict=True))

    def get(
        self,
        obj: str | None,
        record_id: str,
        *,
        include_deleted: bool = False,
    ) -> tuple[str, dict[str, Any]]:
        """The stored row (every column, booleans as bool) or the Salesforce error."""
        obj, id18 = parse_record_id(record_id, obj)
        with self.lock:
            row = self._row(obj, id18)
        if row is None:
            raise not_found()
        if row["IsDeleted"] and not include_deleted:
            raise entity_is_deleted()
        return obj, self.to_api(obj, row, list(self._fields[obj]))

    def to_api(self, obj: str, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
        fields = self._fields[obj]
        out: dict[str, Any] = {}
        for n in names:
            f = fields.get(n)
            if f is None:
                out[n] = row.get(n)
            elif f.type == "address":
                parts = {k: _decode(fields[c], row.get(c)) for k, c in f.components}
                out[n] = parts if any(v is not None for v in parts.values()) else None
            elif f.components:
                parts = dict(f.components)
                name = " ".join(
                    str(row[c])
                    for c in (parts.get("firstName"), parts.get("lastName"))
                    if c and row.get(c)
                )
                out[n] = name or None
            else:
                out[n] = _decode(f, row.get(n))
        return out

    # ----------------------------------------------------------------- writes
    def _coerce(self, obj: str, f: FieldDef, value: Any, *, csv: bool) -> Any:
        """Turn an API value into the stored one, or fail with Salesforce's error."""
        if csv and value == "#N/A":
            value = None
        if f.is_boolean:
            if value is None:
                return 0
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
                return int(value.strip().lower() in ("true", "1"))
            if csv:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD",
                    f"'{value}' is not a valid value for the type xsd:boolean",
                    [f.name],
                )
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR",
                f"Cannot deserialize instance of boolean from "
                f"{type(value).__name__.upper()} value {value}",
            )
        if value is None or value == "":
            if not f.nillable:
                raise SalesforceError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{f.name}]",
                    [f.name],
                )
            return None
        if f.type in NUMERIC:
            return self._number(f, value)
        if f.type in ("date", "datetime"):
            return self._when(f, value)
        if not isinstance(value, str):
            if isinstance(value, bool | int | float):
                value = str(value).lower() if isinstance(value, bool) else str(value)
            else:
                raise SalesforceError(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of string from "
                    f"{type(value).__name__} value for field {f.name}",
                )
        if f.length and len(value) > f.length:
            raise SalesforceError(
                400,
                "STRING_TOO_LONG",
                f"{f.label}: data value too large: {value[:40]} (max length={f.length})",
                [f.name],
            )
        if f.type == "email" and not _EMAIL_RE.fullmatch(value):
            raise SalesforceError(
                400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]
            )
        if f.type == "picklist" and f.restricted_picklist and value not in dict(f.picklist):
            raise SalesforceError(
                400,
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{f.label}: bad value for restricted picklist field: {value}",
                [f.name],
            )
        if f.type == "reference":
            return self._reference(f, value)
        return value

    @staticmethod
    def _number(f: FieldDef, value: Any) -> Any:
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            number = float(value)
        except (TypeError, ValueError):
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR"
                if not isinstance(value, str)
                else "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{f.label}: value not of required type: {value}",
                [f.name],
            ) from None
        if f.type == "int":
            if number != int(number):
                raise SalesforceError(
                    400,
                    "INVALID_TYPE_ON_FIELD_IN_RECORD",
                    f"{f.label}: value not of required type: {value}",
                    [f.name],
                )
            return int(number)
        return number

    @staticmethod
    def _when(f: FieldDef, value: Any) -> str:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            if f.type == "date":
                return date.fromisoformat(value[:10]).isoformat()
            return format_datetime(parse_datetime(value))
        except ValueError:
            raise SalesforceError(
                400,
                "INVALID_TYPE_ON_FIELD_IN_RECORD",
                f"{f.label}: value not of required type: {value}",
                [f.name],
            ) from None

    def _reference(self, f: FieldDef, value: str) -> str:
        """A lookup must hold an id of an object it may point at (and, if served, exist)."""
        try:
            id18 = canonical(value)
        except BadId:
            raise SalesforceError(
                400, "MALFORMED_ID", f"{f.label}: id value of incorrect type: {value}", [f.name]
            ) from None
        target = OBJECT_OF_PREFIX.get(id18[:3])
        if target is not None and target in f.reference_to:
            with self.lock:
                found = self.conn.execute(
                    f'SELECT 1 FROM "{target}" WHERE "Id" = ? AND "IsDeleted" = 0', (id18,)
                ).fetchone()
            if found is None:
                raise SalesforceError(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"{f.label}: id value of incorrect type: {value}",
                    [f.name],
                )
        elif target is not None or not f.reference_to:
            raise SalesforceError(
                400,
                "FIELD_INTEGRITY_EXCEPTION",
                f"{f.label}: id value of incorrect type: {value}",
                [f.name],
            )
        return id18

    def _plan(
        self, obj: str, keys: tuple[str, ...], *, enforce_fls: bool, creating: bool
    ) -> list[tuple[FieldDef, bool]]:
        """Each key's field and whether the caller may write it; unknown keys fail.

        It depends on the keys alone, so a batch whose records name the same fields (every
        row of a Bulk CSV) resolves them once, not once per record.
        """
        by_lower = self._by_lower[obj]
        plan: list[tuple[FieldDef, bool]] = []
        for key in keys:
            f = by_lower.get(key.lower())
            if f is None or (enforce_fls and not self.access(obj, f.name).visible):
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}"
                )
            writable = f.createable if creating else f.updateable
            plan.append((f, writable and not (enforce_fls and not self.updateable(obj, f))))
        return plan

    def _prepare(
        self,
        obj: str,
        values: dict[str, Any],
        *,
        enforce_fls: bool,
        csv: bool,
        creating: bool,
        plan: list[tuple[FieldDef, bool]] | None = None,
    ) -> dict[str, Any]:
        """The stored values of the fields ``values`` sets (``plan``: from ``_plan``)."""
        if plan is None:
            plan = self._plan(obj, tuple(values), enforce_fls=enforce_fls, creating=creating)
        out: dict[str, Any] = {}
        readonly: list[str] = []
        for (f, writable), value in zip(plan, values.values(), strict=True):
            if csv and value == "":
                continue  # Bulk API: an empty cell leaves the field unchanged
            if not writable:
                readonly.append(f.name)
                continue
            out[f.name] = self._coerce(obj, f, value, csv=csv)
        if readonly:
            raise SalesforceError(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                "security settings of this field and verify that it is read/write for your "
                "profile or permission set.",
                readonly,
            )
        if creating:
            missing = [
                f.name
                for f in self._fields[obj].values()
                if f.required_on_create and out.get(f.name) in (None, "")
            ]
            if missing:
                raise SalesforceError(
                    400,
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    missing,
                )
        return out

    def create(
        self, obj: str, values: dict[str, Any], *, enforce_fls: bool = True, csv: bool = False
    ) -> str:
        """Insert a record; system fields are set by the org, never by the caller."""
        if obj == ACCOUNT and self.person_accounts:
            return self._create_account(values, enforce_fls=enforce_fls, csv=csv)
        data = self._prepare(obj, values, enforce_fls=enforce_fls, csv=csv, creating=True)
        return self._insert(obj, data)

    def _insert(self, obj: str, data: dict[str, Any], num: int | None = None) -> str:
        """Insert prepared values with the org's defaults and audit fields (``num``: a
        number reserved with ``_reserve``)."""
        with self.lock:
            stamp = self.stamp()
            if num is None:
                num = self._reserve(obj)
            id18 = new_id(KEY_PREFIX[obj], num)
            row: dict[str, Any] = {
                f.name: f.default_value
                for f in self._fields[obj].values()
                if f.default_value is not None
            }
            row["IsDeleted"] = 0
            if "OwnerId" in self._fields[obj]:
                row["OwnerId"] = USER_ID
            row = {k: (int(v) if isinstance(v, bool) else v) for k, v in row.items()}
            row.update(data)
            row.update(
                {
                    "Id": id18,
                    "CreatedDate": stamp,
                    "CreatedById": USER_ID,
                    "LastModifiedDate": stamp,
                    "LastModifiedById": USER_ID,
                    "SystemModstamp": stamp,
                }
            )
            cols = ", ".join(f'"{k}"' for k in row)
            marks = ", ".join("?" for _ in row)
            with self.transaction():
                self.conn.execute(
                    f'INSERT INTO "{obj}" (rowid, {cols}) VALUES (?, {marks})', (num, *row.values())
                )
        return id18

    def _reserve(self, obj: str) -> int:
        with self.lock:
            num = self._next_num[obj]
            self._next_num[obj] = num + 1
            return num

    def update(
        self,
        obj: str | None,
        record_id: str,
        values: dict[str, Any],
        *,
        enforce_fls: bool = True,
        csv: bool = False,
        as_admin: bool = False,
    ) -> str:
        """Update a record as the integration user (or, ``as_admin``, as an admin user).

        Every update moves ``LastModifiedDate`` and ``SystemModstamp``, even when no value
        changes, as on Salesforce.
        """
        obj, id18 = parse_record_id(record_id, obj)
        converted = ', "IsConverted"' if obj == LEAD else ""
        with self.lock:
            found = self.conn.execute(
                f'SELECT rowid, "IsDeleted"{converted} FROM "{obj}" WHERE "Id" = ?', (id18,)
            ).fetchone()
            if found is None:
                raise not_found()
            row = {
                "rowid": found[0],
                "IsDeleted": found[1],
                "IsConverted": found[2] if converted else 0,
            }
            if row["IsDeleted"]:
                raise entity_is_deleted()
            if obj == LEAD and row["IsConverted"] and not as_admin:
                raise SalesforceError(
                    400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"
                )
            sync = False
            if self.person_accounts and obj in (ACCOUNT, CONTACT):
                rule = self._person_rules(obj, [(id18, values)], csv=csv)[0]
                if isinstance(rule, SalesforceError):
                    raise rule
                values, sync = rule
            data = self._prepare(obj, values, enforce_fls=enforce_fls, csv=csv, creating=False)
            stamp = self.stamp()
            data.update({"LastModifiedDate": stamp, "SystemModstamp": stamp})
            sets = ", ".join(f'"{k}" = ?' for k in data)
            with self.transaction():
                self.conn.execute(
                    f'UPDATE "{obj}" SET {sets} WHERE rowid = ?', (*data.values(), row["rowid"])
                )
                if sync:
                    self._sync_person_contacts([id18])
        return id18

    def update_many(
        self, obj: str, items: list[tuple[str, dict[str, Any]]], *, csv: bool = False
    ) -> list[str | SalesforceError]:
        """Update many records of one object as the integration user, in one transaction.

        Same rules and errors as ``update`` record by record (results in input order), but
        one SELECT finds every target and updates run through ``executemany`` grouped by
        the columns they set: sObject Collections and Bulk batches are the hot path of
        optsync's push benchmarks, and this keeps the emulator off their critical path.
        """
        results: list[str | SalesforceError] = []
        parsed: list[str | SalesforceError] = []
        for record_id, _ in items:
            try:
                parsed.append(parse_record_id(record_id, obj)[1])
            except SalesforceError as exc:
                parsed.append(exc)
        wanted = [p for p in parsed if isinstance(p, str)]
        converted = ', "IsConverted"' if obj == LEAD else ""
        with self.lock, self.transaction():
            found: dict[str, tuple[Any, ...]] = {}
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for row in self.conn.execute(
                    f'SELECT "Id", rowid, "IsDeleted"{converted} FROM "{obj}" '
                    f'WHERE "Id" IN ({marks})',
                    chunk,
                ):
                    found[row[0]] = row[1:]
            stamp = self.stamp()
            groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
            pending: set[str] = set()
            plans: dict[tuple[str, ...], list[tuple[FieldDef, bool]]] = {}
            for target, (_, values) in zip(parsed, items, strict=True):
                if isinstance(target, SalesforceError):
                    results.append(target)
                    continue
                try:
                    row = found.get(target)
                    if row is None:
                        raise not_found()
                    if row[1]:
                        raise entity_is_deleted()
                    if converted and row[2]:
                        raise SalesforceError(
                            400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"
                        )
                    keys = tuple(values)
                    plan = plans.get(keys)
                    if plan is None:  # a plan that fails is not kept: it fails each record
                        plan = plans[keys] = self._plan(obj, keys, enforce_fls=True, creating=False)
                    data = self._prepare(
                        obj, values, enforce_fls=True, csv=csv, creating=False, plan=plan
                    )
                except SalesforceError as exc:
                    results.append(exc)
                    continue
                if target in pending:  # the same record twice: keep the order of writes
                    self._flush_updates(obj, groups)
                    pending.clear()
                pending.add(target)
                data["LastModifiedDate"] = stamp
                data["SystemModstamp"] = stamp
                groups.setdefault(tuple(data), []).append((*data.values(), row[0]))
                results.append(target)
            self._flush_updates(obj, groups)
        return results

    def _flush_updates(
        self,
        obj: str,
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]],
    ) -> None:
        for cols, params in groups.items():
            sets = ", ".join(f'"{c}" = ?' for c in cols)
            self.conn.executemany(f'UPDATE "{obj}" SET {sets} WHERE rowid = ?', params)
        groups.clear()

    def delete(self, obj: str | None, record_id: str) -> str:
        """Soft-delete into the recycle bin (``IsDeleted``; still visible to queryAll)."""
        obj, id18 = parse_record_id(record_id, obj)
        with self.lock:
            row = self._row(obj, id18)
            if row is None:
                raise not_found()
            if row["IsDeleted"]:
                raise entity_is_deleted()
            if obj == CONTACT and row.get("IsPersonAccount"):
                raise person_contact_readonly()
            stamp = self.stamp()
            with self.transaction():
                self.conn.execute(
                    f'UPDATE "{obj}" SET "IsDeleted" = 1, "SystemModstamp" = ?, '
                    f'"LastModifiedDate" = ?, "{_DELETED_COL}" = ? WHERE rowid = ?',
                    (stamp, stamp, stamp, row["rowid"]),
                )
                if obj == ACCOUNT and row.get("PersonContactId"):
                    self.conn.execute(
                        f'UPDATE "Contact" SET "IsDeleted" = 1, "SystemModstamp" = ?, '
                        f'"LastModifiedDate" = ?, "{_DELETED_COL}" = ? WHERE "Id" = ?',
                        (stamp, stamp, stamp, row["PersonContactId"]),
                    )
        return id18

    def merge(self, obj: str, master_id: str, loser_id: str) -> None:
        """Merge ``loser`` into ``master``: the loser is deleted with ``MasterRecordId``."""
        _, master18 = parse_record_id(master_id, obj)
        self.get(obj, master18)
        loser18 = self.delete(obj, loser_id)
        with self.lock, self.transaction():
            self.conn.execute(
                f'UPDATE "{obj}" SET "MasterRecordId" = ? WHERE "Id" = ?', (master18, loser18)
            )

    def convert(self, lead_id: str, contact_id: str | None = None) -> str:
        """Convert a Lead into a new Contact, or into an existing one; returns the Contact id."""
        with self.lock, self.transaction():
            _, lead = self.get(LEAD, lead_id)
            if lead["IsConverted"]:
                raise SalesforceError(
                    400, "CANNOT_UPDATE_CONVERTED_LEAD", "cannot reference converted lead"
                )
            if contact_id:
                _, contact = self.get(CONTACT, contact_id)
                cid = contact["Id"]
                self.update(CONTACT, cid, {}, enforce_fls=False)
            else:
                values = {
                    k: lead[k]
                    for k in ("FirstName", "LastName", "Email", "HasOptedOutOfEmail")
                    if lead.get(k) is not None
                }
                if SALES_OPT_OUT in self._fields[CONTACT]:
                    values[SALES_OPT_OUT] = lead.get(SALES_OPT_OUT, False)
                cid = self.create(CONTACT, values, enforce_fls=False)
            stamp = self.stamp()
            self.conn.execute(
                'UPDATE "Lead" SET "IsConverted" = 1, "ConvertedContactId" = ?, '
                '"ConvertedDate" = ?, "Status" = ?, "LastModifiedDate" = ?, '
                '"SystemModstamp" = ? WHERE "Id" = ?',
                (cid, date.today().isoformat(), "Closed - Converted", stamp, stamp, lead["Id"]),
            )
        return str(cid)

    # ----------------------------------------------------------------- person accounts
    def update_records(
        self, obj: str, items: list[tuple[str, dict[str, Any]]], *, csv: bool = False
    ) -> list[str | SalesforceError]:
        """``update_many`` plus the Person Accounts rules (the one entry point for
        collections and Bulk): person contacts are refused, person fields on business
        accounts too, and a person account's person fields carry over to its PersonContact
        in the same transaction (so both emit their change events)."""
        if not (self.person_accounts and obj in (ACCOUNT, CONTACT)):
            return self.update_many(obj, items, csv=csv)
        with self.lock, self.transaction():
            rules = self._person_rules(obj, items, csv=csv)
            passed = [
                (record_id, rule[0])
                for (record_id, _), rule in zip(items, rules, strict=True)
                if not isinstance(rule, SalesforceError)
            ]
            outcomes = iter(self.update_many(obj, passed, csv=csv))
            results: list[str | SalesforceError] = []
            sync: list[str] = []
            for rule in rules:
                if isinstance(rule, SalesforceError):
                    results.append(rule)
                    continue
                outcome = next(outcomes)
                results.append(outcome)
                if rule[1] and isinstance(outcome, str):
                    sync.append(outcome)
            if sync:
                self._sync_person_contacts(sync)
        return results

    def _person_rules(
        self, obj: str, items: list[tuple[str, dict[str, Any]]], *, csv: bool
    ) -> list[SalesforceError | tuple[dict[str, Any], bool]]:
        """Per item: the error, or (values to write, whether the PersonContact follows).

        A person account's ``Name`` is its person's name, so writing ``FirstName`` or
        ``LastName`` writes ``Name`` too."""
        ids: list[str] = []
        for record_id, _ in items:
            try:
                ids.append(canonical(record_id))
            except BadId:
                ids.append("")
        names = ', "FirstName", "LastName"' if obj == ACCOUNT else ""
        found: dict[str, tuple[Any, ...]] = {}
        wanted = [i for i in ids if i]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for row in self.conn.execute(
                f'SELECT "Id", "IsPersonAccount"{names} FROM "{obj}" WHERE "Id" IN ({marks})',
                chunk,
            ):
                found[row[0]] = row[1:]
        out: list[SalesforceError | tuple[dict[str, Any], bool]] = []
        by_lower = self._by_lower[obj]
        for id18, (_, values) in zip(ids, items, strict=True):
            row = found.get(id18)
            if row is None:  # malformed or unknown: update_many reports it
                out.append((values, False))
                continue
            if obj == CONTACT:
                out.append(person_contact_readonly() if row[0] else (values, False))
                continue
            keys = {by_lower[k.lower()].name: k for k in values if k.lower() in by_lower}
            person = [k for k in keys if k in self._person_map]
            if not row[0]:
                out.append(bad_person_fields("Business", person) if person else (values, False))
                continue
            if "Name" in keys:
                out.append(bad_person_fields("Person", ["Name"]))
                continue
            first, last = row[1], row[2]
            if "FirstName" in keys or "LastName" in keys:
                first = self._new_value(values, keys, "FirstName", first, csv)
                last = self._new_value(values, keys, "LastName", last, csv)
                if not last:
                    out.append(_last_name_missing())
                    continue
                values = {**values, "Name": _person_name(first, last)}
            out.append((values, bool(person)))
        return out

    @staticmethod
    def _new_value(
        values: dict[str, Any], keys: dict[str, str], name: str, current: Any, csv: bool
    ) -> Any:
        if name not in keys:
            return current
        value = values[keys[name]]
        if csv and value == "":
            return current  # Bulk: an empty cell leaves the field unchanged
        if csv and value == "#N/A":
            return None
        return value if isinstance(value, str) else current

    def _sync_person_contacts(self, account_ids: list[str]) -> None:
        """Copy person accounts' person fields (and their stamp) onto their PersonContacts."""
        pairs = list(self._person_columns.items())
        targets = ", ".join(f'"{c}"' for _, c in pairs)
        sources = ", ".join(f'a."{a}"' for a, _ in pairs)
        for start in range(0, len(account_ids), 500):
            chunk = account_ids[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            self.conn.execute(
                f'UPDATE "Contact" SET ({targets}, "LastModifiedDate", "SystemModstamp") = '
                f'(SELECT {sources}, a."LastModifiedDate", a."SystemModstamp" FROM "Account" a '
                'WHERE a."PersonContactId" = "Contact"."Id") '
                'WHERE "Id" IN (SELECT "PersonContactId" FROM "Account" '
                f'WHERE "IsPersonAccount" = 1 AND "Id" IN ({marks}))',
                chunk,
            )

    def _create_account(self, values: dict[str, Any], *, enforce_fls: bool, csv: bool) -> str:
        """Create an Account in an org with Person Accounts: with the person record type
        it is a person account (``LastName`` required, ``Name`` derived) with its
        PersonContact; otherwise a business account, which takes no person fields."""
        by_lower = self._by_lower[ACCOUNT]
        keys = [by_lower[k.lower()].name for k in values if k.lower() in by_lower]
        record_type = next((v for k, v in values.items() if k.lower() == "recordtypeid"), None)
        person = False
        if isinstance(record_type, str) and record_type:
            try:
                person = canonical(record_type) == PERSON_RECORD_TYPE_ID
            except BadId:
                person = False
        if not person:
            bad = [k for k in keys if k in self._person_map]
            if bad:
                raise bad_person_fields("Business", bad)
            data = self._prepare(ACCOUNT, values, enforce_fls=enforce_fls, csv=csv, creating=True)
            return self._insert(ACCOUNT, data)
        if "Name" in keys:
            raise bad_person_fields("Person", ["Name"])
        data = self._prepare(
            ACCOUNT, {**values, "Name": "-"}, enforce_fls=enforce_fls, csv=csv, creating=True
        )
        if not data.get("LastName"):
            raise SalesforceError(
                400,
                "REQUIRED_FIELD_MISSING",
                "Required fields are missing: [LastName]",
                ["LastName"],
            )
        data["Name"] = _person_name(data.get("FirstName"), data["LastName"])
        with self.lock, self.transaction():
            return self._insert_person(data)

    def _insert_person(self, data: dict[str, Any]) -> str:
        """Insert a person account and its PersonContact (prepared Account values)."""
        account_num, contact_num = self._reserve(ACCOUNT), self._reserve(CONTACT)
        account_id = new_id(KEY_PREFIX[ACCOUNT], account_num)
        contact_id = new_id(KEY_PREFIX[CONTACT], contact_num)
        contact = {c: data[a] for a, c in self._person_columns.items() if a in data}
        contact.update({"AccountId": account_id, "IsPersonAccount": 1})
        data = {**data, "IsPersonAccount": 1, "PersonContactId": contact_id}
        data.setdefault("RecordTypeId", PERSON_RECORD_TYPE_ID)
        self._insert(ACCOUNT, data, account_num)
        self._insert(CONTACT, contact, contact_num)
        return account_id

    # ----------------------------------------------------------------- seeding
    def seed(
        self,
        contacts: int,
        leads: int,
        opted_out_fraction: float,
        sales_opted_out_fraction: float,
        *,
        person_accounts: int = 0,
        duplicate_fraction: float = 0.0,
        rng_seed: int = 0,
    ) -> SeedResult:
        """Insert generated records fast (chunked ``executemany``, rows computed on the fly).

        Contacts first, then Leads, then person accounts (each with its PersonContact).
        With ``duplicate_fraction`` F each record after the first Contact carries, with
        probability F, the address of an earlier seeded record instead of its own: a
        Contact's address on a second Contact, on a Lead or on a person account (a Lead's
        when no Contacts are seeded); a third of those differ in case
        (``Ann.Smith…@Example.com``). An address is a pure function of its record's
        number, so no lookup is needed at a million records.
        Ids (and duplicate pairs) are returned only up to ``SEED_IDS_MAX`` records.
        """
        if person_accounts and not self.person_accounts:
            raise ValueError(
                "person_accounts needs the Person Accounts org option: "
                'PUT /__emulator__/org {"person_accounts": true} first'
            )
        total = contacts + leads + person_accounts
        want_ids = total <= SEED_IDS_MAX
        result = SeedResult(
            [] if want_ids else None,
            [] if want_ids else None,
            [] if want_ids else None,
            0,
            [] if want_ids else None,
        )
        with self.lock:
            c_start = self._next_num[CONTACT]
            l_start = self._next_num[LEAD]
        # where a duplicate's address comes from: (prefix tag, key prefix, first num, count)
        source = ("c", KEY_PREFIX[CONTACT], c_start, contacts) if contacts else None
        if source is None and leads:
            source = ("l", KEY_PREFIX[LEAD], l_start, leads)
        stamp = self.stamp()
        audit = (stamp, stamp, stamp, USER_ID, USER_ID, USER_ID)
        base = [
            "CreatedDate",
            "LastModifiedDate",
            "SystemModstamp",
            "OwnerId",
            "CreatedById",
            "LastModifiedById",
        ]
        rng = Random(f"{rng_seed}:{c_start}:{l_start}")
        rand = rng.random

        salt = {t: zlib.crc32(f"{rng_seed}:{t}".encode()) for t in ("c", "l", "p")}

        def is_duplicate(num: int, tag: str) -> bool:
            """Whether record ``num`` carries another's address: a hash of its number, so
            an origin can be checked to hold its own address without remembering it."""
            return bool(duplicate_fraction) and _unit(num, salt[tag]) < duplicate_fraction

        def origin(tag: str, prefix: str, start: int, num: int) -> tuple[str, str, int] | None:
            if source is None or source[0] == tag or tag == "c":
                o_tag, o_prefix, o_start, o_count = tag, prefix, start, num - start
            else:
                o_tag, o_prefix, o_start, o_count = source
            if o_count <= 0:
                return None
            o_num = o_start + rng.randrange(o_count)
            for _ in range(64):
                if not is_duplicate(o_num, o_tag):
                    return o_tag, o_prefix, o_num
                o_num = o_start + (o_num - o_start + 1) % o_count
            return None

        def person(num: int, tag: str, prefix: str, start: int) -> tuple[str, str, str, str]:
            """(first, last, email, id) of this record, or of the record it duplicates."""
            id18 = new_id(prefix, num)
            if not duplicate_fraction or _unit(num, salt[tag]) >= duplicate_fraction:
                first = _FIRST_NAMES[num % len(_FIRST_NAMES)]
                last = _LAST_NAMES[(num // 7) % len(_LAST_NAMES)]
                return first, last, f"{first}.{last}.{tag}{num}@example.com".lower(), id18
            found = origin(tag, prefix, start, num)
            if found is None:
                return (*_seed_identity(num, tag), id18)
            o_tag, o_prefix, o_num = found
            first, last, email = _seed_identity(o_num, o_tag)
            if rng.random() < 1 / 3:
                email = _case_variant(email)
            result.duplicates += 1
            if result.duplicate_ids is not None:
                result.duplicate_ids.append((id18, new_id(o_prefix, o_num)))
            return first, last, email, id18

        def flags() -> tuple[int, int]:
            return (
                int(rng.random() < opted_out_fraction),
                int(rng.random() < sales_opted_out_fraction),
            )

        for obj, count, tag in ((CONTACT, contacts, "c"), (LEAD, leads, "l")):
            ids = result.contact_ids if obj == CONTACT else result.lead_ids
            cols = ["Id", "FirstName", "LastName", "Email", "HasOptedOutOfEmail", SALES_OPT_OUT]
            cols += ["IsDeleted", *base]
            if obj == LEAD:
                cols += ["Company", "Status", "IsConverted"]
            sql = _insert_sql(obj, cols)
            prefix = KEY_PREFIX[obj]
            start = c_start if obj == CONTACT else l_start

            def rows(
                first_num: int,
                n: int,
                obj: str = obj,
                tag: str = tag,
                prefix: str = prefix,
                start: int = start,
                ids: list[str] | None = ids,
            ) -> Iterable[tuple[Any, ...]]:
                for num in range(first_num, first_num + n):
                    first, last, email, id18 = person(num, tag, prefix, start)
                    if ids is not None:
                        ids.append(id18)
                    opted = int(rand() < opted_out_fraction)
                    sales = int(rand() < sales_opted_out_fraction)
                    row: tuple[Any, ...] = (num, id18, first, last, email, opted, sales, 0, *audit)
                    if obj == LEAD:
                        row += (_COMPANIES[num % len(_COMPANIES)], "Open - Not Contacted", 0)
                    yield row

            done = 0
            while done < count:
                n = min(_SEED_CHUNK, count - done)
                with self.lock, self.transaction():
                    first_num = self._next_num[obj]
                    self.conn.executemany(sql, rows(first_num, n))
                    self._next_num[obj] = first_num + n
                done += n
        self._seed_person_accounts(person_accounts, person, flags, audit, base, result)
        return result

    def _seed_person_accounts(
        self,
        count: int,
        person: Callable[[int, str, str, int], tuple[str, str, str, str]],
        flags: Callable[[], tuple[int, int]],
        audit: tuple[str, ...],
        base: list[str],
        result: SeedResult,
    ) -> None:
        pc = "Sales_Opt_Out__pc"
        account_sql = _insert_sql(
            ACCOUNT,
            [
                "Id",
                "Name",
                "FirstName",
                "LastName",
                "PersonEmail",
                "PersonHasOptedOutOfEmail",
                pc,
                "IsPersonAccount",
                "PersonContactId",
                "RecordTypeId",
                "IsDeleted",
                *base,
            ],
        )
        contact_sql = _insert_sql(
            CONTACT,
            [
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "HasOptedOutOfEmail",
                SALES_OPT_OUT,
                "IsPersonAccount",
                "AccountId",
                "IsDeleted",
                *base,
            ],
        )
        with self.lock:
            a_start = self._next_num[ACCOUNT]
        done = 0
        while done < count:
            n = min(_SEED_CHUNK, count - done)
            with self.lock, self.transaction():
                a0, c0 = self._next_num[ACCOUNT], self._next_num[CONTACT]
                accounts, contacts = [], []
                for k in range(n):
                    a_num, c_num = a0 + k, c0 + k
                    first, last, email, a_id = person(a_num, "p", KEY_PREFIX[ACCOUNT], a_start)
                    c_id = new_id(KEY_PREFIX[CONTACT], c_num)
                    opted, sales = flags()
                    if result.person_account_ids is not None:
                        result.person_account_ids.append(a_id)
                    name = f"{first} {last}"
                    row = (a_num, a_id, name, first, last, email, opted, sales, 1, c_id)
                    accounts.append((*row, PERSON_RECORD_TYPE_ID, 0, *audit))
                    contacts.append(
                        (c_num, c_id, first, last, email, opted, sales, 1, a_id, 0, *audit)
                    )
                self.conn.executemany(account_sql, accounts)
                self.conn.executemany(contact_sql, contacts)
                self._next_num[ACCOUNT] = a0 + n
                self._next_num[CONTACT] = c0 + n
            done += n

    # ----------------------------------------------------------------- queries
    def _from_where(self, q: CompiledQuery, include_deleted: bool) -> str:
        where = q.where_sql if include_deleted else f'({q.where_sql}) AND "IsDeleted" = 0'
        return f'FROM "{q.obj}" WHERE {where}'

    def _limit_clause(self, q: CompiledQuery) -> str:
        if q.limit is None and q.offset is None:
            return ""
        return f" LIMIT {q.limit if q.limit is not None else -1} OFFSET {q.offset or 0}"

    def count(self, q: CompiledQuery, include_deleted: bool) -> int:
        sql = f"SELECT count(*) FROM (SELECT 1 {self._from_where(q, include_deleted)}"
        sql += self._limit_clause(q) + ")"
        with self.lock:
            return int(self.conn.execute(sql, q.params).fetchone()[0])

    def matching_rowids(self, q: CompiledQuery, include_deleted: bool) -> array[int]:
        """The ordered rowids of every matching record: 8 bytes per row, not a row list."""
        sql = (
            f"SELECT rowid {self._from_where(q, include_deleted)} ORDER BY {q.order_sql}"
            + self._limit_clause(q)
        )
        out: array[int] = array("q")
        with self.lock:
            cur = self.conn.execute(sql, q.params)
            while True:
                chunk = cur.fetchmany(50_000)
                if not chunk:
                    break
                out.extend(r[0] for r in chunk)
        return out

    def fetch(
        self,
        obj: str,
        rowids: Iterable[int],
        names: list[str],
    ) -> Iterator[tuple[Any, ...]]:
        """Rows for ``rowids`` in the given order, as tuples of ``names`` (booleans as bool)."""
        columns = [resolve_path(obj, n, self._fields) for n in names]
        defs = [c.field for c in columns]
        bool_idx = [i for i, f in enumerate(defs) if f.is_boolean]
        plain = all(f.is_boolean or f.type not in ("address", "int", *NUMERIC) for f in defs)
        cols = ", ".join(c.sql for c in columns)
        batch: list[int] = []

        def flush(batch: list[int]) -> list[tuple[Any, ...]]:
            marks = ", ".join("?" for _ in batch)
            with self.lock:
                found = {
                    r[0]: r[1:]
                    for r in self.conn.execute(
                        f'SELECT rowid, {cols} FROM "{obj}" WHERE rowid IN ({marks})', batch
                    )
                }
            rows = []
            for rid in batch:
                row = found.get(rid)
                if row is None:
                    continue  # hard-deleted since the query ran (reset)
                if not plain:
                    row = tuple(_decode(f, v) for f, v in zip(defs, row, strict=True))
                elif bool_idx:
                    lst = list(row)
                    for i in bool_idx:
                        lst[i] = bool(lst[i])
                    row = tuple(lst)
                rows.append(row)
            return rows

        for rid in rowids:
            batch.append(rid)
            if len(batch) >= _FETCH_CHUNK:
                yield from flush(batch)
                batch = []
        if batch:
            yield from flush(batch)

    def aggregate(self, q: CompiledQuery, include_deleted: bool) -> list[dict[str, Any]]:
        """Rows of a ``GROUP BY`` / ``COUNT(field)`` query, keyed as Salesforce names them."""
        cols = ", ".join(a.sql for a in q.aggregates)
        sql = f"SELECT {cols} {self._from_where(q, include_deleted)}"
        if q.group_sql:
            sql += f" GROUP BY {q.group_sql}"
        sql += f" ORDER BY {q.order_sql}" + self._limit_clause(q)
        with self.lock:
            rows = self.conn.execute(sql, q.params).fetchall()
        return [
            {
                a.key: (_decode(a.field, v) if a.field is not None else int(v))
                for a, v in zip(q.aggregates, row, strict=True)
            }
            for row in rows
        ]

    def updated_ids(self, obj: str, start: str, end: str, limit: int) -> list[str]:
        with self.lock:
            return [
                r[0]
                for r in self.conn.execute(
                    f'SELECT "Id" FROM "{obj}" WHERE "SystemModstamp" >= ? '
                    'AND "SystemModstamp" < ? AND "IsDeleted" = 0 '
                    'ORDER BY "SystemModstamp" LIMIT ?',
                    (start, end, limit),
                )
            ]

    def deleted_records(
        self,
        obj: str,
        start: str,
        end: str,
        limit: int,
    ) -> tuple[list[tuple[str, str]], str | None]:
        with self.lock:
            rows = [
                (r[0], r[1])
                for r in self.conn.execute(
                    f'SELECT "Id", "{_DELETED_COL}" FROM "{obj}" WHERE "IsDeleted" = 1 AND '
                    f'"{_DELETED_COL}" >= ? AND "{_DELETED_COL}" < ? ORDER BY "{_DELETED_COL}" '
                    "LIMIT ?",
                    (start, end, limit),
                )
            ]
            earliest = self.conn.execute(
                f'SELECT min("{_DELETED_COL}") FROM "{obj}" WHERE "IsDeleted" = 1'
            ).fetchone()[0]
        return rows, earliest

    def total_records(self) -> int:
        with self.lock:
            return sum(
                int(self.conn.execute(f'SELECT count(*) FROM "{o}"').fetchone()[0])
                for o in DATA_OBJECTS
            )


__all__ = ["FieldAccess", "OrgStore", "parse_record_id"]
