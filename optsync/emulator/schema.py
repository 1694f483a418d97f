"""The emulated org's metadata: which objects and fields exist and how they describe.

Kept apart from the storage so that describe, SOQL validation, writes and Bulk CSV
parsing all agree on one definition of a field (type, whether the system lets anyone
write it, its label and length), exactly as a real org has one schema behind every API.

The standard field lists are data, not code: one JSON file per object under
``optsync/emulator/objects/`` (written from the Object Reference, see
``docs/emulator.md``). A file states what differs from the defaults of a field's type;
this module fills in the rest, so a field entry in describe is derived the same way for
every object. The one custom field (``Sales_Opt_Out__c``) is an org customization, not a
standard field, and is added here when the org has it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from typing import Any

from optsync.emulator.ids import new_id

ACCOUNT = "Account"
CONTACT = "Contact"
LEAD = "Lead"
USER = "User"
ORGANIZATION = "Organization"
# Every object the org serves; the first three hold user data, the last two one record each.
OBJECTS = (ACCOUNT, CONTACT, LEAD, USER, ORGANIZATION)
DATA_OBJECTS = (ACCOUNT, CONTACT, LEAD)
SALES_OPT_OUT = "Sales_Opt_Out__c"
SALES_OPT_OUT_OBJECTS = (CONTACT, LEAD)
CDC_OBJECTS = (CONTACT, LEAD, ACCOUNT)
"""The entities Change Data Capture serves here (Pub/Sub API topics and change events)."""
CDC_DEFAULT = (CONTACT, LEAD)
"""The entities selected for Change Data Capture at start (and after a reset)."""
ORG_PREFIX = "00D"
USER_PREFIX = "005"
JOB_PREFIX = "750"
ORG_ID = new_id(ORG_PREFIX, 1, pod="5g")
USER_ID = new_id(USER_PREFIX, 1, pod="5g")
MASTER_RECORD_TYPE_ID = "012000000000000AAA"
LEAD_DEFAULT_STATUS = "Open - Not Contacted"

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "address": "urn:address",
}
_STRINGISH = ("string", "textarea", "email", "phone", "url", "picklist")
NUMERIC = ("double", "currency", "percent", "int")


@dataclass(frozen=True)
class FieldDef:
    """One field as the org defines it, before field-level security is applied.

    ``createable`` / ``updateable`` say whether anyone may write it on insert / update
    (audit and system fields: nobody); field-level security can only take access away.
    ``components`` maps the JSON keys of a compound field (an address, a person's name)
    to its component fields; compound fields are read-only and not stored.
    """

    name: str
    label: str
    type: str
    soap_type: str
    length: int = 0
    precision: int = 0
    scale: int = 0
    digits: int = 0
    custom: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    child_relationship_name: str | None = None
    polymorphic: bool = False
    picklist: tuple[tuple[str, str], ...] = field(default=())
    restricted_picklist: bool = False
    compound_field_name: str | None = None
    components: tuple[tuple[str, str], ...] = ()
    id_lookup: bool = False
    name_field: bool = False
    unique: bool = False
    extra_type_info: str | None = None

    @property
    def system_updateable(self) -> bool:
        return self.updateable

    @property
    def is_boolean(self) -> bool:
        return self.type == "boolean"

    @property
    def is_string(self) -> bool:
        return self.type in (*_STRINGISH, "id", "reference")

    @property
    def is_compound(self) -> bool:
        return bool(self.components)

    @property
    def stored(self) -> bool:
        """Whether the field is a column of its own (compound fields are derived)."""
        return not self.components

    @property
    def required_on_create(self) -> bool:
        return (
            self.createable
            and not self.nillable
            and not self.defaulted_on_create
            and not self.is_boolean
        )


@dataclass(frozen=True)
class ObjectDef:
    """An object's describe-level facts and its fields in describe order."""

    name: str
    label: str
    label_plural: str
    key_prefix: str
    flags: dict[str, bool]
    supported_scopes: tuple[tuple[str, str], ...]
    fields: tuple[FieldDef, ...]


_OBJECT_FLAGS = (
    "activateable",
    "createable",
    "custom",
    "customSetting",
    "deepCloneable",
    "deletable",
    "deprecatedAndHidden",
    "feedEnabled",
    "hasSubtypes",
    "isInterface",
    "isSubtype",
    "layoutable",
    "mergeable",
    "mruEnabled",
    "queryable",
    "replicateable",
    "retrieveable",
    "searchable",
    "triggerable",
    "undeletable",
    "updateable",
)
_FLAG_DEFAULTS = {
    "activateable": False,
    "custom": False,
    "customSetting": False,
    "deepCloneable": False,
    "deprecatedAndHidden": False,
    "hasSubtypes": False,
    "isInterface": False,
    "isSubtype": False,
}


def _field_from(raw: dict[str, Any]) -> FieldDef:
    kind = raw["type"]
    length = int(raw.get("length", 18 if kind in ("id", "reference") else 0))
    is_id = kind == "id"
    boolean = kind == "boolean"
    compound = "components" in raw
    picklist = tuple(
        (v, v) if isinstance(v, str) else (v[0], v[1]) for v in raw.get("picklistValues", ())
    )
    return FieldDef(
        name=raw["name"],
        label=raw["label"],
        type=kind,
        soap_type=_SOAP_TYPES.get(kind, "xsd:string"),
        length=length,
        precision=int(raw.get("precision", 0)),
        scale=int(raw.get("scale", 0)),
        digits=int(raw.get("digits", 0)),
        createable=bool(raw.get("createable", not (is_id or compound))),
        updateable=bool(raw.get("updateable", not (is_id or compound))),
        nillable=bool(raw.get("nillable", not (is_id or boolean))),
        defaulted_on_create=bool(raw.get("defaultedOnCreate", is_id or boolean)),
        default_value=raw.get("defaultValue", False if boolean else None),
        reference_to=tuple(raw.get("referenceTo", ())),
        relationship_name=raw.get("relationshipName"),
        child_relationship_name=raw.get("childRelationshipName"),
        polymorphic=bool(raw.get("polymorphicForeignKey", False)),
        picklist=picklist,
        restricted_picklist=bool(raw.get("restrictedPicklist", False)),
        compound_field_name=raw.get("compoundFieldName"),
        components=tuple(raw.get("components", {}).items()),
        id_lookup=bool(raw.get("idLookup", is_id)),
        name_field=bool(raw.get("nameField", False)),
        unique=bool(raw.get("unique", False)),
        extra_type_info=raw.get("extraTypeInfo"),
    )


@cache
def object_def(name: str) -> ObjectDef:
    """The standard definition of ``name`` read from its data file (cached)."""
    text = resources.files("optsync.emulator").joinpath("objects", f"{name}.json").read_text()
    raw = json.loads(text)
    flags = {k: bool(raw.get(k, _FLAG_DEFAULTS.get(k, True))) for k in _OBJECT_FLAGS}
    return ObjectDef(
        name=raw["name"],
        label=raw["label"],
        label_plural=raw["labelPlural"],
        key_prefix=raw["keyPrefix"],
        flags=flags,
        supported_scopes=tuple((s[0], s[1]) for s in raw.get("supportedScopes", ())),
        fields=tuple(_field_from(f) for f in raw["fields"]),
    )


KEY_PREFIX = {o: object_def(o).key_prefix for o in OBJECTS}
OBJECT_OF_PREFIX = {v: k for k, v in KEY_PREFIX.items()}
LABEL_PLURAL = {o: object_def(o).label_plural for o in OBJECTS}

_SALES_OPT_OUT_FIELD = FieldDef(
    SALES_OPT_OUT,
    "Sales Opt Out",
    "boolean",
    "xsd:boolean",
    custom=True,
    nillable=False,
    defaulted_on_create=True,
    default_value=False,
)


@cache
def _person_data() -> dict[str, Any]:
    text = (
        resources.files("optsync.emulator").joinpath("objects", "person_accounts.json").read_text()
    )
    data: dict[str, Any] = json.loads(text)
    return data


PERSON_RECORD_TYPE_ID = new_id("012", 1, pod="5g")
"""The Person Account record type: an Account created with it is a person account."""


def person_record_type() -> dict[str, str]:
    return dict(_person_data()["recordType"])


def person_field_map(*, sales_opt_out: bool) -> dict[str, str]:
    """Account person field → the PersonContact field it mirrors (``X__pc`` → ``X__c``)."""
    out = {a: c for a, c in _person_data()["personFields"]}
    if sales_opt_out:
        out[SALES_OPT_OUT.removesuffix("__c") + "__pc"] = SALES_OPT_OUT
    return out


def _person_account_fields(contact: dict[str, FieldDef], sales_opt_out: bool) -> list[FieldDef]:
    """The fields Account gains: the two markers, then each mirrored Contact field under
    its Account name (same type, length, picklist; addresses keep their components)."""
    mapping = person_field_map(sales_opt_out=sales_opt_out)
    renamed = {c: a for a, c in mapping.items()}
    out = [_field_from(raw) for raw in _person_data()["account"]]
    for account_name, contact_name in mapping.items():
        f = contact[contact_name]
        out.append(
            replace(
                f,
                name=account_name,
                # on Account the person's name fields are optional (business accounts)
                nillable=True if account_name == "LastName" else f.nillable,
                compound_field_name=renamed.get(f.compound_field_name or "")
                if f.compound_field_name
                else None,
                components=tuple((k, renamed[c]) for k, c in f.components),
                relationship_name=f"Person{f.relationship_name}" if f.relationship_name else None,
                child_relationship_name=None,
                id_lookup=False,
                name_field=False,
            )
        )
    return out


def fields_of(
    obj: str, *, sales_opt_out: bool, person_accounts: bool = False
) -> dict[str, FieldDef]:
    """The fields an object has in this org, keyed by canonical API name."""
    out = {f.name: f for f in object_def(obj).fields}
    if sales_opt_out and obj in SALES_OPT_OUT_OBJECTS:
        out[SALES_OPT_OUT] = _SALES_OPT_OUT_FIELD
    if person_accounts and obj == CONTACT:
        out.update({f.name: f for f in (_field_from(r) for r in _person_data()["contact"])})
    if person_accounts and obj == ACCOUNT:
        contact = fields_of(CONTACT, sales_opt_out=sales_opt_out)
        out.update({f.name: f for f in _person_account_fields(contact, sales_opt_out)})
    return out


def stored_fields(obj: str) -> list[FieldDef]:
    """The columns the storage keeps for ``obj`` (compound fields are derived); person
    account columns exist whether or not the org option is on."""
    return [
        f for f in fields_of(obj, sales_opt_out=True, person_accounts=True).values() if f.stored
    ]


def child_relationships(obj: str) -> list[dict[str, Any]]:
    """``childRelationships`` of ``obj``: the served objects whose lookups point at it."""
    out = []
    for child in OBJECTS:
        for f in object_def(child).fields:
            if obj in f.reference_to and f.child_relationship_name:
                out.append(
                    {
                        "cascadeDelete": False,
                        "childSObject": child,
                        "deprecatedAndHidden": False,
                        "field": f.name,
                        "junctionIdListNames": [],
                        "junctionReferenceTo": [],
                        "relationshipName": f.child_relationship_name,
                        "restrictedDelete": False,
                    }
                )
    return out


def with_access(f: FieldDef, *, createable: bool, updateable: bool) -> FieldDef:
    return replace(f, createable=createable, updateable=updateable)


def _byte_length(f: FieldDef) -> int:
    if f.type in _STRINGISH:
        return f.length * 3
    if f.type in ("id", "reference"):
        return f.length
    return 0


def describe_field(
    f: FieldDef, *, updateable: bool, createable: bool | None = None
) -> dict[str, Any]:
    """A describe ``fields[]`` entry with every key a v59+ org emits (alphabetical).

    ``updateable``/``createable`` are the values after field-level security.
    """
    if createable is None:
        createable = updateable and f.createable
    long_text = f.type == "textarea" and f.length > 255
    filterable = not long_text and not f.is_compound
    groupable = f.type not in ("datetime", "double", "currency", "percent", "address") and (
        not long_text
    )
    required = f.required_on_create
    return {
        "aggregatable": f.type not in ("boolean", "address") and not long_text,
        "aiPredictionField": False,
        "autoNumber": False,
        "byteLength": _byte_length(f),
        "calculated": f.name == "Name" and f.is_compound,
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": False,
        "compoundFieldName": f.compound_field_name,
        "controllerName": None,
        "createable": createable,
        "custom": f.custom,
        "defaultValue": f.default_value,
        "defaultValueFormula": None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": f.digits,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": False,
        "extraTypeInfo": f.extra_type_info,
        "filterable": filterable,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": groupable,
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": f.id_lookup,
        "inlineHelpText": None,
        "label": f.label,
        "length": f.length,
        "mask": None,
        "maskType": None,
        "name": f.name,
        "nameField": f.name_field,
        "namePointing": f.polymorphic,
        "nillable": f.nillable,
        "permissionable": f.type != "id"
        and not required
        and (f.createable or f.updateable or f.name in ("PhotoUrl", "IsEmailBounced")),
        "picklistValues": [
            {
                "active": True,
                "defaultValue": value == f.default_value,
                "label": label,
                "validFor": None,
                "value": value,
            }
            for value, label in f.picklist
        ],
        "polymorphicForeignKey": f.polymorphic,
        "precision": f.precision,
        "queryByDistance": f.type == "address",
        "referenceTargetField": None,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": f.restricted_picklist,
        "scale": f.scale,
        "searchPrefilterable": f.type == "reference",
        "soapType": f.soap_type,
        "sortable": filterable and f.type != "address",
        "type": f.type,
        "unique": f.unique,
        "updateable": updateable,
        "writeRequiresMasterRead": False,
    }
