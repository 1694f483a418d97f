"""Per-entity Avro schemas of change events, and the field bitmaps over them.

Salesforce serves one schema per entity through ``GetSchema``: the ``ChangeEventHeader``
record first, then every field of the entity as a null-first union, compound fields
(``Name``, addresses) as nested records. The schema id is a fingerprint of the schema, so
it changes exactly when the field set changes (a field added or removed). Field lists in
the header are bitmaps over these positions: ``"0x…"`` for top-level fields (bit 0 =
field 0) and ``"<pos>-0x…"`` for the sub-fields of the compound field at ``<pos>``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import fastavro

from optsync.emulator.schema import FieldDef
from optsync.emulator.soql import parse_datetime

NAMESPACE = "com.sforce.eventbus"
CHANGE_TYPES = (
    "CREATE",
    "UPDATE",
    "DELETE",
    "UNDELETE",
    "GAP_CREATE",
    "GAP_UPDATE",
    "GAP_DELETE",
    "GAP_UNDELETE",
    "GAP_OVERFLOW",
)
# Not in change events: the record id travels in the header, the rest is bookkeeping.
EXCLUDED = frozenset({"Id", "IsDeleted", "SystemModstamp"})
_ADDRESS_PARTS = (
    "Street",
    "City",
    "State",
    "PostalCode",
    "Country",
    "StateCode",
    "CountryCode",
    "Latitude",
    "Longitude",
    "GeocodeAccuracy",
)
# compound field -> (Avro record name, [(column, sub-field name)])
_COMPOUNDS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Name",
        "Switchable_PersonName",
        tuple((c, c) for c in ("Salutation", "FirstName", "LastName", "MiddleName", "Suffix")),
    ),
    ("MailingAddress", "MailingAddress", tuple((f"Mailing{p}", p) for p in _ADDRESS_PARTS)),
    ("OtherAddress", "OtherAddress", tuple((f"Other{p}", p) for p in _ADDRESS_PARTS)),
    ("Address", "Address", tuple((p, p) for p in _ADDRESS_PARTS)),
    *(
        (f"{kind}Address", f"{kind}Address", tuple((f"{kind}{p}", p) for p in _ADDRESS_PARTS))
        for kind in ("Billing", "Shipping", "PersonMailing", "PersonOther")
    ),
)
_AVRO_TYPE = {
    "boolean": "boolean",
    "datetime": "long",  # ms since the epoch
    "date": "int",  # days since the epoch
    "int": "int",
    "double": "double",
    "currency": "double",
    "percent": "double",
}
_HEADER: dict[str, Any] = {
    "type": "record",
    "name": "ChangeEventHeader",
    "namespace": NAMESPACE,
    "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": {"type": "array", "items": "string"}},
        {
            "name": "changeType",
            "type": {
                "type": "enum",
                "name": "ChangeType",
                "namespace": NAMESPACE,
                "symbols": list(CHANGE_TYPES),
            },
        },
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
        {"name": "diffFields", "type": {"type": "array", "items": "string"}},
        {"name": "changedFields", "type": {"type": "array", "items": "string"}},
    ],
}


def _avro_type(f: FieldDef) -> str:
    if f.name.endswith(("Latitude", "Longitude")):
        return "double"
    return _AVRO_TYPE.get(f.type, "string")


def to_avro_value(f: FieldDef, value: Any) -> Any:
    """A stored value as the change event carries it."""
    if value is None:
        return None
    kind = _avro_type(f)
    if kind == "boolean":
        return bool(value)
    if f.type == "datetime":
        return int(parse_datetime(str(value)).timestamp() * 1000)
    if f.type == "date":
        return (date.fromisoformat(str(value)[:10]) - date(1970, 1, 1)).days
    if kind == "double":
        return float(value)
    if kind == "int":
        return int(value)
    return str(value)


@dataclass(frozen=True)
class Slot:
    """Where a store column sits in the schema: top position, sub position (or None)."""

    position: int
    sub: int | None
    field: FieldDef


class EntitySchema:
    """The change-event schema of one entity with a given field set."""

    def __init__(self, entity: str, fields: dict[str, FieldDef]):
        self.entity = entity
        # stored fields only: a compound field (Name, an address) is derived from its
        # components, which the schema groups into the compound's nested record
        fields = {name: f for name, f in fields.items() if not f.is_compound}
        self.slots: dict[str, Slot] = {}
        self.names: list[str] = ["ChangeEventHeader"]
        avro_fields: list[dict[str, Any]] = [{"name": "ChangeEventHeader", "type": _HEADER}]
        grouped: dict[str, tuple[str, str, list[tuple[str, str]]]] = {}
        for top, record_name, parts in _COMPOUNDS:
            if top in fields:  # Account's Name is a plain field: its person parts stay apart
                continue
            present = [(c, s) for c, s in parts if c in fields and c not in EXCLUDED]
            for col, _ in present:
                grouped[col] = (top, record_name, present)
        done: set[str] = set()
        for name, f in fields.items():
            if name in EXCLUDED or name in done:
                continue
            position = len(avro_fields)
            if name in grouped:
                top, record_name, present = grouped[name]
                sub_fields = []
                for sub, (col, sub_name) in enumerate(present):
                    self.slots[col] = Slot(position, sub, fields[col])
                    sub_fields.append(
                        {
                            "name": sub_name,
                            "type": ["null", _avro_type(fields[col])],
                            "default": None,
                        }
                    )
                    done.add(col)
                record = {"type": "record", "name": record_name, "fields": sub_fields}
                avro_fields.append({"name": top, "type": ["null", record], "default": None})
                self.names.append(top)
                continue
            self.slots[name] = Slot(position, None, f)
            avro_fields.append({"name": name, "type": ["null", _avro_type(f)], "default": None})
            self.names.append(name)
        self.schema: dict[str, Any] = {
            "type": "record",
            "name": f"{entity}ChangeEvent",
            "namespace": NAMESPACE,
            "fields": avro_fields,
        }
        self.json = json.dumps(self.schema, separators=(",", ":"))
        digest = hashlib.sha256(self.json.encode()).digest()
        self.id = base64.urlsafe_b64encode(digest).decode()[:22]
        self._parsed = fastavro.parse_schema(self.schema)

    def encode(self, record: dict[str, Any]) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self._parsed, record)
        return out.getvalue()

    def decode(self, payload: bytes) -> dict[str, Any]:
        value = fastavro.schemaless_reader(io.BytesIO(payload), self._parsed, None)
        assert isinstance(value, dict)
        return value

    def body(self, values: dict[str, Any]) -> dict[str, Any]:
        """Top-level Avro fields from store columns (absent columns stay null)."""
        out: dict[str, Any] = {n: None for n in self.names[1:]}
        for col, value in values.items():
            slot = self.slots.get(col)
            if slot is None:
                continue
            v = to_avro_value(slot.field, value)
            top = self.names[slot.position]
            if slot.sub is None:
                out[top] = v
            else:
                record = out[top] or {s["name"]: None for s in self._sub_fields(slot.position)}
                record[self._sub_fields(slot.position)[slot.sub]["name"]] = v
                out[top] = record
        return out

    def _sub_fields(self, position: int) -> list[dict[str, Any]]:
        union = self.schema["fields"][position]["type"]
        return list(union[1]["fields"])

    def bitmap(self, columns: list[str]) -> list[str]:
        """``["0x…", "<pos>-0x…", …]`` for these columns, or ``[]`` if none."""
        top = 0
        subs: dict[int, int] = {}
        for col in columns:
            slot = self.slots.get(col)
            if slot is None:
                continue
            top |= 1 << slot.position
            if slot.sub is not None:
                subs[slot.position] = subs.get(slot.position, 0) | (1 << slot.sub)
        if not top:
            return []
        return [_hex(top)] + [f"{pos}-{_hex(bits)}" for pos, bits in sorted(subs.items())]


def _hex(bits: int) -> str:
    digits = f"{bits:X}"
    return "0x" + digits.zfill(len(digits) + len(digits) % 2)


def read_bitmap(schema: EntitySchema, bitmap: list[str]) -> list[str]:
    """Field names a bitmap stands for (``Name.LastName`` for sub-fields): what clients do."""
    if not bitmap:
        return []
    top = int(bitmap[0], 16)
    subs = {int(p): int(b, 16) for p, _, b in (e.partition("-") for e in bitmap[1:])}
    names: list[str] = []
    for position, name in enumerate(schema.names):
        if not top >> position & 1:
            continue
        if position in subs:
            parts = schema._sub_fields(position)
            names += [
                f"{name}.{parts[i]['name']}" for i in range(len(parts)) if subs[position] >> i & 1
            ]
        else:
            names.append(name)
    return names


def epoch_ms(stamp: str | None) -> int:
    if not stamp:
        return int(datetime.now(UTC).timestamp() * 1000)
    return int(parse_datetime(stamp).timestamp() * 1000)
