"""The emulated org's data: Contacts and Leads in SQLite, with Salesforce's write rules.

Why SQLite: it persists the org across restarts in one file (or lives in memory for
tests), it evaluates compiled SOQL over a million rows quickly, and ``executemany`` lets
seeding stream rows without building them all in memory.

One connection is shared by the event loop and the Bulk worker thread, so every access
goes through ``self.lock``; each operation is short (one statement or one batch). The
table's ``rowid`` is also the number inside the record id, which makes ids stable and
lets queries remember their results as compact arrays of rowids.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
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
    ALL_COLUMNS,
    CONTACT,
    KEY_PREFIX,
    LEAD,
    OBJECT_OF_PREFIX,
    OBJECTS,
    SALES_OPT_OUT,
    FieldDef,
    fields_of,
)
from optsync.emulator.soql import CompiledQuery, format_datetime

_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
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
    if f.type in ("string", "email", "picklist"):
        return "TEXT COLLATE NOCASE"
    return "TEXT"


@dataclass
class FieldAccess:
    """Field-level security of one field for the integration user."""

    visible: bool = True
    updateable: bool = True


class OrgStore:
    """Contacts and Leads with Salesforce's validation, FLS and audit-field rules."""

    def __init__(self, path: str, *, sales_opt_out: bool = True):
        self.path = path
        self.sales_opt_out = sales_opt_out
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._tx_depth = 0
        self._last_stamp_ms = 0
        self._schema_changed: dict[str, datetime] = {}
        self._fields = {o: fields_of(o, sales_opt_out=sales_opt_out) for o in OBJECTS}
        self._by_lower = {
            o: {n.lower(): f for n, f in fs.items()} for o, fs in self._fields.items()
        }
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
        all_fields = {o: fields_of(o, sales_opt_out=True) for o in OBJECTS}
        for obj in OBJECTS:
            cols = ", ".join(
                f'"{name}" {_sql_type(f)}' for name, f in all_fields[obj].items() if name != "Id"
            )
            c.execute(
                f'CREATE TABLE IF NOT EXISTS "{obj}" (rowid INTEGER PRIMARY KEY, '
                f'"Id" TEXT NOT NULL UNIQUE, {cols}, "{_DELETED_COL}" TEXT)'
            )
            c.execute(f'CREATE INDEX IF NOT EXISTS "{obj}_email" ON "{obj}" ("Email")')
            c.execute(f'CREATE INDEX IF NOT EXISTS "{obj}_modstamp" ON "{obj}" ("SystemModstamp")')
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

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    def reset(self) -> None:
        """Empty the org and restore default field-level security."""
        with self.lock:
            for obj in OBJECTS:
                self.conn.execute(f'DELETE FROM "{obj}"')
                self._next_num[obj] = 1
            self.conn.execute("DELETE FROM fls")
            self._access.clear()
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
            v = row.get(n)
            out[n] = bool(v) if f is not None and f.is_boolean else v
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
        if f.type == "email" and not _EMAIL_RE.match(value):
            raise SalesforceError(
                400, "INVALID_EMAIL_ADDRESS", f"{f.label}: invalid email address: {value}", [f.name]
            )
        return value

    def _prepare(
        self, obj: str, values: dict[str, Any], *, enforce_fls: bool, csv: bool, creating: bool
    ) -> dict[str, Any]:
        fields = self._fields[obj]
        by_lower = self._by_lower[obj]
        out: dict[str, Any] = {}
        readonly: list[str] = []
        for key, value in values.items():
            f = by_lower.get(key.lower())
            if f is None or (enforce_fls and not self.access(obj, f.name).visible):
                raise SalesforceError(
                    400, "INVALID_FIELD", f"No such column '{key}' on sobject of type {obj}"
                )
            if csv and value == "":
                continue  # Bulk API: an empty cell leaves the field unchanged
            if not f.system_updateable or (enforce_fls and not self.updateable(obj, f)):
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
                for f in fields.values()
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
        data = self._prepare(obj, values, enforce_fls=enforce_fls, csv=csv, creating=True)
        with self.lock:
            stamp = self.stamp()
            num = self._next_num[obj]
            self._next_num[obj] = num + 1
            id18 = new_id(KEY_PREFIX[obj], num)
            row: dict[str, Any] = {
                f.name: f.default_value
                for f in self._fields[obj].values()
                if f.default_value is not None
            }
            row.update({"HasOptedOutOfEmail": 0, "IsDeleted": 0})
            if obj == LEAD:
                row["IsConverted"] = 0
            if SALES_OPT_OUT in self._fields[obj]:
                row[SALES_OPT_OUT] = 0
            row = {k: (int(v) if isinstance(v, bool) else v) for k, v in row.items()}
            row.update(data)
            row.update(
                {
                    "Id": id18,
                    "CreatedDate": stamp,
                    "LastModifiedDate": stamp,
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
            data = self._prepare(obj, values, enforce_fls=enforce_fls, csv=csv, creating=False)
            stamp = self.stamp()
            data.update({"LastModifiedDate": stamp, "SystemModstamp": stamp})
            sets = ", ".join(f'"{k}" = ?' for k in data)
            with self.transaction():
                self.conn.execute(
                    f'UPDATE "{obj}" SET {sets} WHERE rowid = ?', (*data.values(), row["rowid"])
                )
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
                    data = self._prepare(obj, values, enforce_fls=True, csv=csv, creating=False)
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
            stamp = self.stamp()
            with self.transaction():
                self.conn.execute(
                    f'UPDATE "{obj}" SET "IsDeleted" = 1, "SystemModstamp" = ?, '
                    f'"LastModifiedDate" = ?, "{_DELETED_COL}" = ? WHERE rowid = ?',
                    (stamp, stamp, stamp, row["rowid"]),
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

    # ----------------------------------------------------------------- seeding
    def seed(
        self,
        contacts: int,
        leads: int,
        opted_out_fraction: float,
        sales_opted_out_fraction: float,
        *,
        rng_seed: int = 0,
    ) -> tuple[list[str] | None, list[str] | None]:
        """Insert generated records fast (chunked ``executemany``, streamed from generators).

        Ids are returned only up to ``SEED_IDS_MAX`` records in total, so seeding a million
        records never builds a million-element response.
        """
        want_ids = contacts + leads <= SEED_IDS_MAX
        out: dict[str, list[str] | None] = {}
        for obj, count in ((CONTACT, contacts), (LEAD, leads)):
            ids: list[str] | None = [] if want_ids else None
            rng = Random(f"{rng_seed}:{obj}:{self._next_num[obj]}")
            stamp = self.stamp()
            cols = [
                "Id",
                "FirstName",
                "LastName",
                "Email",
                "HasOptedOutOfEmail",
                SALES_OPT_OUT,
                "IsDeleted",
                "CreatedDate",
                "LastModifiedDate",
                "SystemModstamp",
            ]
            if obj == LEAD:
                cols += ["Company", "Status", "IsConverted"]
            sql = (
                f'INSERT INTO "{obj}" (rowid, {", ".join(chr(34) + c + chr(34) for c in cols)})'
                f" VALUES (?, {', '.join('?' for _ in cols)})"
            )
            prefix = KEY_PREFIX[obj]
            tag = "c" if obj == CONTACT else "l"

            def rows(
                start: int,
                n: int,
                rng: Random = rng,
                prefix: str = prefix,
                tag: str = tag,
                obj: str = obj,
                stamp: str = stamp,
                ids: list[str] | None = ids,
            ) -> Iterable[tuple[Any, ...]]:
                for num in range(start, start + n):
                    first = _FIRST_NAMES[num % len(_FIRST_NAMES)]
                    last = _LAST_NAMES[(num // 7) % len(_LAST_NAMES)]
                    id18 = new_id(prefix, num)
                    if ids is not None:
                        ids.append(id18)
                    r = rng.random()
                    row: tuple[Any, ...] = (
                        num,
                        id18,
                        first,
                        last,
                        f"{first}.{last}.{tag}{num}@example.com".lower(),
                        int(r < opted_out_fraction),
                        int(rng.random() < sales_opted_out_fraction),
                        0,
                        stamp,
                        stamp,
                        stamp,
                    )
                    if obj == LEAD:
                        row += (_COMPANIES[num % len(_COMPANIES)], "Open - Not Contacted", 0)
                    yield row

            done = 0
            while done < count:
                n = min(_SEED_CHUNK, count - done)
                with self.lock, self.transaction():
                    start = self._next_num[obj]
                    self.conn.executemany(sql, rows(start, n))
                    self._next_num[obj] = start + n
                done += n
            out[obj] = ids
        return out[CONTACT], out[LEAD]

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
        fields = self._fields[obj]
        bool_idx = [i for i, n in enumerate(names) if fields[n].is_boolean]
        cols = ", ".join(f'"{n}"' for n in names)
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
                if bool_idx:
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
                int(self.conn.execute(f'SELECT count(*) FROM "{o}"').fetchone()[0]) for o in OBJECTS
            )


__all__ = ["ALL_COLUMNS", "FieldAccess", "OrgStore", "parse_record_id"]
