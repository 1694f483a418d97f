"""The emulated org's metadata: which objects and fields exist and how they describe.

Kept apart from the storage so that describe, SOQL validation, writes and Bulk CSV
parsing all agree on one definition of a field (type, whether the system lets anyone
write it, its label and length), exactly as a real org has one schema behind every API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CONTACT = "Contact"
LEAD = "Lead"
OBJECTS = (CONTACT, LEAD)
KEY_PREFIX = {CONTACT: "003", LEAD: "00Q"}
OBJECT_OF_PREFIX = {v: k for k, v in KEY_PREFIX.items()}
LABEL_PLURAL = {CONTACT: "Contacts", LEAD: "Leads"}
SALES_OPT_OUT = "Sales_Opt_Out__c"
ORG_PREFIX = "00D"
USER_PREFIX = "005"
JOB_PREFIX = "750"
LEAD_DEFAULT_STATUS = "Open - Not Contacted"
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)


@dataclass(frozen=True)
class FieldDef:
    """One field as the org defines it, before field-level security is applied.

    ``system_updateable`` is False for audit and system fields nobody can write;
    field-level security can only take write access away from the others.
    """

    name: str
    label: str
    type: str
    soap_type: str
    length: int = 0
    custom: bool = False
    system_updateable: bool = True
    nillable: bool = True
    defaulted_on_create: bool = False
    default_value: Any = None
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    required_on_create: bool = False
    objects: tuple[str, ...] = OBJECTS
    picklist: tuple[str, ...] = field(default=())

    @property
    def is_boolean(self) -> bool:
        return self.type == "boolean"

    @property
    def is_string(self) -> bool:
        return self.type in ("string", "email", "picklist", "id", "reference")


_FIELDS: tuple[FieldDef, ...] = (
    FieldDef(
        "Id",
        "Contact ID",
        "id",
        "tns:ID",
        18,
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
    ),
    FieldDef(
        "IsDeleted",
        "Deleted",
        "boolean",
        "xsd:boolean",
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
        default_value=False,
    ),
    FieldDef(
        "MasterRecordId",
        "Master Record ID",
        "reference",
        "tns:ID",
        18,
        system_updateable=False,
        relationship_name="MasterRecord",
    ),
    FieldDef(
        "LastName", "Last Name", "string", "xsd:string", 80, nillable=False, required_on_create=True
    ),
    FieldDef("FirstName", "First Name", "string", "xsd:string", 40),
    FieldDef(
        "Company",
        "Company",
        "string",
        "xsd:string",
        255,
        nillable=False,
        required_on_create=True,
        objects=(LEAD,),
    ),
    FieldDef("Email", "Email", "email", "xsd:string", 80),
    FieldDef(
        "Status",
        "Status",
        "picklist",
        "xsd:string",
        255,
        nillable=False,
        defaulted_on_create=True,
        default_value=LEAD_DEFAULT_STATUS,
        objects=(LEAD,),
        picklist=LEAD_STATUSES,
    ),
    FieldDef(
        "HasOptedOutOfEmail",
        "Email Opt Out",
        "boolean",
        "xsd:boolean",
        nillable=False,
        defaulted_on_create=True,
        default_value=False,
    ),
    FieldDef(
        "IsConverted",
        "Converted",
        "boolean",
        "xsd:boolean",
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
        default_value=False,
        objects=(LEAD,),
    ),
    FieldDef(
        "ConvertedDate",
        "Converted Date",
        "date",
        "xsd:date",
        system_updateable=False,
        objects=(LEAD,),
    ),
    FieldDef(
        "ConvertedContactId",
        "Converted Contact ID",
        "reference",
        "tns:ID",
        18,
        system_updateable=False,
        reference_to=(CONTACT,),
        relationship_name="ConvertedContact",
        objects=(LEAD,),
    ),
    FieldDef(
        "CreatedDate",
        "Created Date",
        "datetime",
        "xsd:dateTime",
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
    ),
    FieldDef(
        "LastModifiedDate",
        "Last Modified Date",
        "datetime",
        "xsd:dateTime",
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
    ),
    FieldDef(
        "SystemModstamp",
        "System Modstamp",
        "datetime",
        "xsd:dateTime",
        system_updateable=False,
        nillable=False,
        defaulted_on_create=True,
    ),
    FieldDef(
        SALES_OPT_OUT,
        "Sales Opt Out",
        "boolean",
        "xsd:boolean",
        custom=True,
        nillable=False,
        defaulted_on_create=True,
        default_value=False,
    ),
)

# Every column the storage keeps, in table order (a superset of any object's fields).
ALL_COLUMNS: tuple[str, ...] = tuple(f.name for f in _FIELDS)


def fields_of(obj: str, *, sales_opt_out: bool) -> dict[str, FieldDef]:
    """The fields an object has in this org, keyed by canonical API name."""
    out: dict[str, FieldDef] = {}
    for f in _FIELDS:
        if obj not in f.objects:
            continue
        if f.name == SALES_OPT_OUT and not sales_opt_out:
            continue
        if f.name == "Id" and obj == LEAD:
            f = FieldDef(
                "Id",
                "Lead ID",
                "id",
                "tns:ID",
                18,
                system_updateable=False,
                nillable=False,
                defaulted_on_create=True,
            )
        if f.name == "MasterRecordId":
            f = FieldDef(
                f.name,
                f.label,
                f.type,
                f.soap_type,
                f.length,
                system_updateable=False,
                reference_to=(obj,),
                relationship_name="MasterRecord",
                objects=f.objects,
            )
        out[f.name] = f
    return out


def describe_field(f: FieldDef, *, updateable: bool) -> dict[str, Any]:
    """A describe ``fields[]`` entry with the keys real orgs emit (alphabetical)."""
    createable = updateable and f.name not in ("Id",)
    entry: dict[str, Any] = {
        "aggregatable": f.type != "boolean",
        "autoNumber": False,
        "byteLength": f.length * 3
        if f.type in ("string", "email", "picklist")
        else (f.length if f.type in ("id", "reference") else 0),
        "calculated": False,
        "cascadeDelete": False,
        "caseSensitive": False,
        "createable": createable,
        "custom": f.custom,
        "defaultValue": f.default_value if f.type in ("boolean",) else None,
        "defaultedOnCreate": f.defaulted_on_create,
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": 0,
        "encrypted": False,
        "externalId": False,
        "filterable": True,
        "groupable": f.type != "datetime",
        "htmlFormatted": False,
        "idLookup": f.name in ("Id", "Email"),
        "inlineHelpText": None,
        "label": f.label,
        "length": f.length,
        "name": f.name,
        "nameField": False,
        "namePointing": False,
        "nillable": f.nillable,
        "permissionable": f.system_updateable and not f.required_on_create,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": v == f.default_value,
                "label": v,
                "validFor": None,
                "value": v,
            }
            for v in f.picklist
        ],
        "precision": 0,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "restrictedPicklist": False,
        "scale": 0,
        "soapType": f.soap_type,
        "sortable": True,
        "type": f.type,
        "unique": False,
        "updateable": updateable,
        "writeRequiresMasterRead": False,
    }
    return entry
