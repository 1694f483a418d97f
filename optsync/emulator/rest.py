"""REST API routes: versions, resources, describe, records, query, collections, limits.

Each route answers with the exact status codes and JSON shapes of
``docs/salesforce-api.md`` (the wire contract simple-salesforce relies on); validation
and Salesforce's write rules live in the store, shared with Bulk and the control API.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime as http_date
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from optsync.emulator.auth import ORG_ID, USER_ID
from optsync.emulator.cursors import Cursor
from optsync.emulator.errors import SalesforceError
from optsync.emulator.gateway import api, json_body, not_found, sf_json, versions
from optsync.emulator.org import Org
from optsync.emulator.schema import (
    MASTER_RECORD_TYPE_ID,
    OBJECTS,
    PERSON_RECORD_TYPE_ID,
    FieldDef,
    child_relationships,
    describe_field,
    object_def,
    person_record_type,
)
from optsync.emulator.soql import CompiledQuery, compile_query, format_datetime, parse_datetime
from optsync.emulator.store import parse_record_id

DEFAULT_BATCH = 2000
MIN_BATCH = 200
COLLECTION_MAX = 200
COLLECTION_MAX_CHUNKS = 10
REPLICATION_MAX_IDS = 600_000
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was "
    "using AllOrNone header",
    "fields": [],
}


def _obj(request: Request) -> str:
    name = request.path_params["sobject"]
    for obj in OBJECTS:
        if obj.lower() == name.lower():
            return obj
    raise not_found()


def _obj_name(request: Request) -> str:
    name = request.path_params.get("sobject", "")
    canonical = {o.lower(): o for o in OBJECTS}.get(name.lower(), name)
    return f"sobjects/{canonical}"


def _base(version: str) -> str:
    return f"/services/data/v{version}"


def _urls(obj: str, version: str) -> dict[str, str]:
    """The eight ``urls`` of a describeGlobal entry (also the start of describe's)."""
    b = f"{_base(version)}/sobjects/{obj}"
    return {
        "compactLayouts": f"{b}/describe/compactLayouts",
        "rowTemplate": f"{b}/{{ID}}",
        "approvalLayouts": f"{b}/describe/approvalLayouts",
        "listviews": f"{b}/listviews",
        "describe": f"{b}/describe",
        "quickActions": f"{b}/quickActions",
        "layouts": f"{b}/describe/layouts",
        "sobject": b,
    }


def _object_summary(org: Org, obj: str, version: str) -> dict[str, Any]:
    """A describeGlobal entry, also the base of ``sobjects/{type}`` and describe."""
    d = object_def(obj)
    body: dict[str, Any] = dict(d.flags)
    body.update(
        {
            "associateEntityType": None,
            "associateParentEntity": None,
            "keyPrefix": d.key_prefix,
            "label": d.label,
            "labelPlural": d.label_plural,
            "name": obj,
            "urls": _urls(obj, version),
        }
    )
    return dict(sorted(body.items()))


# ------------------------------------------------------------------ discovery
async def list_versions(request: Request) -> Response:
    """``GET /services/data/``: no session needed and not counted (as on Salesforce)."""
    return sf_json(versions())


@api("resources")
async def resources(request: Request, org: Org, version: str) -> Response:
    b = _base(version)
    names = [
        "tooling",
        "metadata",
        "eclair",
        "folders",
        "prechatForms",
        "contact-tracing",
        "chatter",
        "tabs",
        "appMenu",
        "quickActions",
        "queryAll",
        "commerce",
        "wave",
        "iot",
        "analytics",
        "search",
        "identity",
        "composite",
        "parameterizedSearch",
        "fingerprint",
        "theme",
        "nouns",
        "event",
        "serviceTemplates",
        "recent",
        "connect",
        "licensing",
        "limits",
        "process",
        "async-queries",
        "query",
        "match",
        "emailConnect",
        "compactLayouts",
        "knowledgeManagement",
        "sobjects",
        "actions",
        "support",
        "jobs",
    ]
    body = {n: f"{b}/{n}" for n in names}
    body["identity"] = f"{org.login_url}/id/{ORG_ID}/{USER_ID}"
    return sf_json(body)


@api("sobjects")
async def global_describe(request: Request, org: Org, version: str) -> Response:
    return sf_json(
        {
            "encoding": "UTF-8",
            "maxBatchSize": 200,
            "sobjects": [_object_summary(org, o, version) for o in OBJECTS],
        }
    )


@api(_obj_name)
async def sobject_basic(request: Request, org: Org, version: str) -> Response:
    obj = _obj(request)
    return sf_json({"objectDescribe": _object_summary(org, obj, version), "recentItems": []})


@api(lambda r: _obj_name(r) + "/describe")
async def describe(request: Request, org: Org, version: str) -> Response:
    """Describe with FLS applied; ``If-Modified-Since`` → 304 while the schema is unchanged."""
    obj = _obj(request)
    changed = org.store.schema_changed_at(obj)
    since = request.headers.get("if-modified-since")
    if since:
        try:
            since_dt = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            since_dt = None
        if since_dt is not None:
            if since_dt.tzinfo is None:
                since_dt = since_dt.replace(tzinfo=UTC)
            if changed <= since_dt:
                return Response(status_code=304)
    fields = [
        describe_field(f, updateable=org.store.updateable(obj, f))
        for f in org.store.visible_fields(obj).values()
    ]
    d = object_def(obj)
    body = _object_summary(org, obj, version)
    urls = dict(body["urls"])
    urls.update(
        {
            "uiDetailTemplate": f"{org.instance_url}/{{ID}}",
            "uiEditTemplate": f"{org.instance_url}/{{ID}}/e",
            "uiNewRecord": f"{org.instance_url}/{d.key_prefix}/e",
        }
    )
    body.update(
        {
            "actionOverrides": [],
            "childRelationships": child_relationships(obj),
            "compactLayoutable": d.flags["layoutable"],
            "defaultImplementation": None,
            "extendedBy": None,
            "extendsInterfaces": None,
            "fields": fields,
            "implementedBy": None,
            "implementsInterfaces": None,
            "listviewable": None,
            "lookupLayoutable": None,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "recordTypeInfos": _record_types(org, obj, version),
            "searchLayoutable": d.flags["searchable"],
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": label, "name": name} for name, label in d.supported_scopes
            ],
            "urls": dict(sorted(urls.items())),
        }
    )
    body = dict(sorted(body.items()))
    return sf_json(body, headers={"Last-Modified": http_date(changed, usegmt=True)})


def _record_types(org: Org, obj: str, version: str) -> list[dict[str, Any]]:
    """Master, plus the Person Account record type on Account when the org has them."""
    types = [("Master", "Master", MASTER_RECORD_TYPE_ID, True)]
    if obj == "Account" and org.store.person_accounts:
        rt = person_record_type()
        types.insert(0, (rt["developerName"], rt["name"], PERSON_RECORD_TYPE_ID, False))
    return [
        {
            "active": True,
            "available": True,
            "defaultRecordTypeMapping": master,
            "developerName": developer,
            "master": master,
            "name": name,
            "recordTypeId": type_id,
            "urls": {"layout": f"{_base(version)}/sobjects/{obj}/describe/layouts/{type_id}"},
        }
        for developer, name, type_id, master in types
    ]


# ------------------------------------------------------------------ records
@api(_obj_name)
async def create_record(request: Request, org: Org, version: str) -> Response:
    obj = _obj(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise SalesforceError(
            400,
            "JSON_PARSER_ERROR",
            "Cannot deserialize instance of sObject from a non-object value",
        )
    body.pop("attributes", None)
    new_id = org.store.create(obj, body)
    return sf_json(
        {"id": new_id, "success": True, "errors": []},
        201,
        headers={"Location": f"{_base(version)}/sobjects/{obj}/{new_id}"},
    )


@api(lambda r: _obj_name(r) + "/{id}")
async def record(request: Request, org: Org, version: str) -> Response:
    """GET (optionally ``?fields=``), PATCH (204) and DELETE (204) of one record."""
    obj = _obj(request)
    record_id = request.path_params["record_id"]
    if request.method == "GET":
        _, row = org.store.get(obj, record_id)
        visible = org.store.visible_fields(obj)
        wanted = request.query_params.get("fields")
        if wanted:
            by_lower = {n.lower(): n for n in visible}
            names = []
            for raw in (w.strip() for w in wanted.split(",")):
                if not raw:
                    continue
                name = by_lower.get(raw.lower())
                if name is None:
                    raise SalesforceError(
                        400,
                        "INVALID_FIELD",
                        f"No such column '{raw}' on entity '{obj}'. If you are attempting to "
                        "use a custom field, be sure to append the '__c' after the custom "
                        "field name. Please reference your WSDL or the describe call for the "
                        "appropriate names.",
                    )
                names.append(name)
        else:
            names = list(visible)
        out: dict[str, Any] = {
            "attributes": {"type": obj, "url": f"{_base(version)}/sobjects/{obj}/{row['Id']}"}
        }
        out.update({n: row[n] for n in names})
        return sf_json(out)
    if request.method == "PATCH":
        body = await json_body(request)
        if not isinstance(body, dict):
            raise SalesforceError(
                400,
                "JSON_PARSER_ERROR",
                "Cannot deserialize instance of sObject from a non-object value",
            )
        body.pop("attributes", None)
        _, id18 = parse_record_id(record_id, obj)
        for key in [k for k in body if k.lower() == "id"]:
            if str(body[key]).upper()[:15] != id18.upper()[:15]:
                raise SalesforceError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "Unable to create/update fields: Id. Please check the "
                    "security settings of this field and verify that it is "
                    "read/write for your profile or permission set.",
                    ["Id"],
                )
            del body[key]
        org.store.update(obj, record_id, body)
        return Response(status_code=204)
    org.store.delete(obj, record_id)
    return Response(status_code=204)


def _replication_window(request: Request) -> tuple[datetime, datetime]:
    try:
        start = parse_datetime(request.query_params["start"]).replace(second=0, microsecond=0)
        end = parse_datetime(request.query_params["end"]).replace(second=0, microsecond=0)
    except (KeyError, ValueError):
        raise SalesforceError(
            400, "MALFORMED_QUERY", "start and end must be ISO-8601 date-times"
        ) from None
    if start >= end:
        raise SalesforceError(
            400,
            "INVALID_REPLICATION_DATE",
            "startDate must chronologically precede endDate by more than one minute",
        )
    return start, end


@api(lambda r: _obj_name(r) + "/updated")
async def updated(request: Request, org: Org, version: str) -> Response:
    """``getUpdated``: ids whose SystemModstamp falls in [start, end).

    ``start``/``end`` lose their seconds as on Salesforce. Everything stamped before
    ``end`` is returned; ``latestDateCovered`` is ``min(end, now)``, and since the next
    poll's start is again truncated to the minute, consecutive polls overlap and lose
    nothing.
    """
    obj = _obj(request)
    start, end = _replication_window(request)
    now = datetime.now(UTC)
    if start < now - timedelta(days=30):
        raise SalesforceError(
            400, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago"
        )
    ids = org.store.updated_ids(
        obj, format_datetime(start), format_datetime(end), REPLICATION_MAX_IDS + 1
    )
    if len(ids) > REPLICATION_MAX_IDS:
        raise SalesforceError(
            400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 600000 records"
        )
    return sf_json({"ids": ids, "latestDateCovered": format_datetime(min(end, now))})


@api(lambda r: _obj_name(r) + "/deleted")
async def deleted(request: Request, org: Org, version: str) -> Response:
    """``getDeleted``: recycle-bin entries deleted in [start, end)."""
    obj = _obj(request)
    start, end = _replication_window(request)
    rows, earliest = org.store.deleted_records(
        obj, format_datetime(start), format_datetime(end), REPLICATION_MAX_IDS + 1
    )
    end = min(end, datetime.now(UTC))
    if len(rows) > REPLICATION_MAX_IDS:
        raise SalesforceError(
            400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 600000 records"
        )
    earliest_dt = parse_datetime(earliest).replace(second=0, microsecond=0) if earliest else end
    return sf_json(
        {
            "deletedRecords": [{"id": i, "deletedDate": d} for i, d in rows],
            "earliestDateAvailable": format_datetime(earliest_dt),
            "latestDateCovered": format_datetime(end),
        }
    )


# ------------------------------------------------------------------ query
def _batch_size(request: Request) -> int:
    header = request.headers.get("sforce-query-options", "")
    m = re.search(r"batchSize\s*=\s*(\d+)", header, re.IGNORECASE)
    if not m:
        return DEFAULT_BATCH
    return max(MIN_BATCH, min(DEFAULT_BATCH, int(m.group(1))))


def _page(
    org: Org,
    cursor: Cursor,
    offset: int,
    version: str,
) -> tuple[list[dict[str, Any]], int]:
    end = min(offset + cursor.batch_size, len(cursor.rowids))
    parent_ids = [f"{rel}.Id" for rel in cursor.relations]
    names = list(dict.fromkeys(["Id", *cursor.fields, *parent_ids]))
    records = []
    for row in org.store.fetch(cursor.obj, cursor.rowids[offset:end], names):
        values = dict(zip(names, row, strict=True))
        records.append(_nest(cursor.obj, cursor.fields, cursor.relations, values, version))
    return records, end


def _attributes(obj: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": obj, "url": f"{_base(version)}/sobjects/{obj}/{record_id}"}


def _nest(
    obj: str,
    paths: list[str],
    relations: dict[str, str],
    values: dict[str, Any],
    version: str,
) -> dict[str, Any]:
    """One query row as Salesforce shapes it: parent fields nest under their relationship
    (``"Account": {"attributes": …, "Name": "Acme"}``), or ``null`` without a parent."""
    rec: dict[str, Any] = {"attributes": _attributes(obj, values["Id"], version)}
    for path in paths:
        *rels, name = path.split(".")
        target = rec
        prefix: list[str] = []
        for rel in rels:
            prefix.append(rel)
            key = ".".join(prefix)
            parent_id = values.get(f"{key}.Id")
            if parent_id is None:
                target.setdefault(rel, None)
                target = {}
                break
            if target.get(rel) is None:
                target[rel] = {"attributes": _attributes(relations[key], parent_id, version)}
            target = target[rel]
        target[name] = values[path]
    return rec


def _query_body(
    org: Org, cursor_id: str | None, cursor: Cursor, offset: int, version: str
) -> dict[str, Any]:
    records, end = _page(org, cursor, offset, version)
    body: dict[str, Any] = {"totalSize": len(cursor.rowids), "done": end >= len(cursor.rowids)}
    if not body["done"]:
        if cursor_id is None:
            cursor_id = org.cursors.open(cursor)
        body["nextRecordsUrl"] = f"{_base(version)}/query/{cursor_id}-{end}"
    elif cursor_id is not None:
        org.cursors.close(cursor_id)
    body["records"] = records
    return body


async def _run_query(
    request: Request,
    org: Org,
    version: str,
    include_deleted: bool,
) -> Response:
    soql = request.query_params.get("q")
    if soql is None:
        raise SalesforceError(400, "MALFORMED_QUERY", "A query string must be provided.")
    fields_for = {o: org.store.visible_fields(o) for o in OBJECTS}
    q = compile_query(soql, fields_for)
    if request.query_params.get("columns", "").lower() == "true":
        return sf_json(_columns(q))
    if q.aggregates:
        rows = org.store.aggregate(q, include_deleted)
        records = [{"attributes": {"type": "AggregateResult"}, **r} for r in rows]
        return sf_json({"totalSize": len(records), "done": True, "records": records})
    if q.count_only:
        return sf_json(
            {"totalSize": org.store.count(q, include_deleted), "done": True, "records": []}
        )
    rowids = org.store.matching_rowids(q, include_deleted)
    cursor = Cursor(
        q.obj, q.fields, rowids, _batch_size(request), include_deleted, relations=q.relations
    )
    return sf_json(_query_body(org, None, cursor, 0, version))


def _column(name: str, f: FieldDef | None, display: str, aggregate: bool) -> dict[str, Any]:
    kind = f.type if f is not None else "int"
    return {
        "aggregate": aggregate,
        "apexType": None if f is None else _APEX_TYPES.get(kind, "String"),
        "booleanType": kind == "boolean",
        "columnName": name,
        "custom": bool(f and f.custom),
        "displayName": display,
        "foreignKeyName": None,
        "insertable": bool(f and f.createable),
        "joinColumns": [],
        "numberType": kind in ("int", "double", "currency", "percent"),
        "textType": f is not None and f.is_string,
        "updatable": bool(f and f.updateable),
    }


_APEX_TYPES = {
    "id": "Id",
    "reference": "Id",
    "boolean": "Boolean",
    "date": "Date",
    "datetime": "Datetime",
    "double": "Double",
    "currency": "Decimal",
    "int": "Integer",
    "address": "Address",
}


def _columns(q: CompiledQuery) -> dict[str, Any]:
    """``query?q=…&columns=true``: the column metadata the Salesforce CLI asks for first
    (relationship paths nest as ``joinColumns``, aggregates by their alias or ``exprN``)."""
    columns: list[dict[str, Any]] = []
    if q.aggregates:
        for a in q.aggregates:
            columns.append(_column(a.key, a.field, a.display, a.field is None))
    for path in q.fields:
        *rels, name = path.split(".")
        level = columns
        for rel in rels:
            found = next((c for c in level if c["columnName"] == rel and c["joinColumns"]), None)
            if found is None:
                found = _column(rel, None, rel, False)
                found["apexType"] = None
                level.append(found)
            level = found["joinColumns"]
        level.append(_column(name, q.defs[path], path, False))
    return {
        "columnMetadata": columns,
        "entityName": q.obj,
        "groupBy": q.group_sql is not None,
        "idSelected": "Id" in q.fields,
        "keyPrefix": object_def(q.obj).key_prefix,
    }


@api("query")
async def query(request: Request, org: Org, version: str) -> Response:
    return await _run_query(request, org, version, include_deleted=False)


@api("queryAll")
async def query_all(request: Request, org: Org, version: str) -> Response:
    return await _run_query(request, org, version, include_deleted=True)


def _more_name(request: Request) -> str:
    """A continuation counts under the query it continues (``query`` or ``queryAll``)."""
    org: Org = request.app.state.org
    if org.cursors.includes_deleted(request.path_params["locator"]):
        return "queryAll"
    return "query"


@api(_more_name)
async def query_more(request: Request, org: Org, version: str) -> Response:
    """Continue a cursor (``/query/<id>-<offset>`` also continues a queryAll)."""
    cursor_id, cursor, offset = org.cursors.get(request.path_params["locator"])
    return sf_json(_query_body(org, cursor_id, cursor, offset, version))


# ------------------------------------------------------------------ sObject Collections
def _collection_records(body: Any) -> tuple[bool, list[Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SalesforceError(
            400, "JSON_PARSER_ERROR", "The request body must be an object with a records array"
        )
    records = body["records"]
    if len(records) > COLLECTION_MAX:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_MAX} "
            "records into this call",
        )
    types = [
        r.get("attributes", {}).get("type")
        if isinstance(r, dict) and isinstance(r.get("attributes"), dict)
        else None
        for r in records
    ]
    chunks = sum(1 for i, t in enumerate(types) if i == 0 or t != types[i - 1])
    if chunks > COLLECTION_MAX_CHUNKS:
        raise SalesforceError(
            400,
            "INVALID_BATCH_REQUEST",
            "Cannot have more than 10 chunks in a single operation. Please "
            "rearrange the data to reduce chunking.",
        )
    return bool(body.get("allOrNone", False)), records


class _Rollback(Exception):
    """Raised inside the transaction to undo an allOrNone request."""


def _target(rec: Any, creating: bool) -> tuple[str, str, dict[str, Any]]:
    """Check one collection record's envelope: (object, id or "", field values)."""
    if not isinstance(rec, dict) or not isinstance(rec.get("attributes"), dict):
        raise SalesforceError(400, "INVALID_TYPE", "Must send a concrete entity type.")
    type_name = rec["attributes"].get("type")
    obj = {o.lower(): o for o in OBJECTS}.get(str(type_name).lower())
    if obj is None:
        raise SalesforceError(400, "INVALID_TYPE", f"sObject type '{type_name}' is not supported.")
    values = {k: v for k, v in rec.items() if k != "attributes"}
    id_keys = [k for k in values if k.lower() == "id"]
    if creating:
        if id_keys:
            raise SalesforceError(
                400, "INVALID_FIELD", "cannot specify Id in an insert call", ["Id"]
            )
        return obj, "", values
    if not id_keys or not values[id_keys[0]]:
        raise SalesforceError(400, "MISSING_ARGUMENT", "Id not specified in an update call", ["Id"])
    record_id = str(values[id_keys[0]])
    for k in id_keys:
        values.pop(k)
    return obj, record_id, values


def _not_found_as_cross_reference(exc: SalesforceError) -> SalesforceError:
    """Inside a collection a never-existing id reads as a bad cross reference."""
    if exc.code == "NOT_FOUND":
        return SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
    return exc


def _save_all(org: Org, records: list[Any], creating: bool) -> list[str | SalesforceError]:
    """Save every record in request order; updates go chunk by chunk (same-type runs)."""
    out: list[str | SalesforceError] = []
    run: list[tuple[str, dict[str, Any]]] = []
    run_obj = ""

    def flush() -> None:
        nonlocal run
        if run:
            out.extend(org.store.update_records(run_obj, run))
            run = []

    for rec in records:
        try:
            obj, record_id, values = _target(rec, creating)
        except SalesforceError as exc:
            flush()
            out.append(exc)
            continue
        if creating:
            try:
                out.append(org.store.create(obj, values))
            except SalesforceError as exc:
                out.append(exc)
            continue
        if obj != run_obj:
            flush()
            run_obj = obj
        run.append((record_id, values))
    flush()
    return [r if isinstance(r, str) else _not_found_as_cross_reference(r) for r in out]


def _delete_collection(request: Request, org: Org) -> Response:
    """``DELETE /composite/sobjects?ids=…[&allOrNone=true]``: up to 200 ids, in order."""
    ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    if not ids:
        raise SalesforceError(400, "MISSING_ARGUMENT", "ids parameter is required", ["ids"])
    if len(ids) > COLLECTION_MAX:
        raise SalesforceError(
            400,
            "EXCEEDED_ID_LIMIT",
            f"record limit reached. cannot submit more than {COLLECTION_MAX} "
            "records into this call",
        )
    all_or_none = request.query_params.get("allOrNone", "false").lower() == "true"
    results: list[dict[str, Any]] = []
    try:
        with org.store.transaction():
            for record_id in ids:
                try:
                    results.append(
                        {"id": org.store.delete(None, record_id), "success": True, "errors": []}
                    )
                except SalesforceError as exc:
                    err = _not_found_as_cross_reference(exc) if exc.code == "NOT_FOUND" else exc
                    results.append({"success": False, "errors": [err.save_error()]})
            if all_or_none and not all(r["success"] for r in results):
                raise _Rollback
    except _Rollback:
        results = [
            r
            if not r["success"]
            else {"id": r["id"], "success": False, "errors": [dict(ROLLED_BACK)]}
            for r in results
        ]
    return sf_json(results)


@api("composite/sobjects")
async def collections(request: Request, org: Org, version: str) -> Response:
    """``POST`` (create) / ``PATCH`` (update) up to 200 records; results in request order."""
    if request.method == "DELETE":
        return _delete_collection(request, org)
    if request.method not in ("POST", "PATCH"):
        raise SalesforceError(
            405,
            "METHOD_NOT_ALLOWED",
            f"HTTP Method '{request.method}' not allowed. Allowed are POST,PATCH,DELETE",
        )
    all_or_none, records = _collection_records(await json_body(request))
    creating = request.method == "POST"
    results: list[dict[str, Any]] = []
    try:
        # Validation happens before each write, so a failed record leaves nothing behind;
        # only allOrNone needs the rollback.
        with org.store.transaction():
            for outcome in _save_all(org, records, creating):
                if isinstance(outcome, str):
                    results.append({"id": outcome, "success": True, "errors": []})
                elif creating:
                    results.append({"id": None, "success": False, "errors": [outcome.save_error()]})
                else:
                    results.append({"success": False, "errors": [outcome.save_error()]})
            if all_or_none and not all(r["success"] for r in results):
                raise _Rollback
    except _Rollback:
        results = [
            r if not r["success"] else {"id": None, "success": False, "errors": [dict(ROLLED_BACK)]}
            for r in results
        ]
    return sf_json(results)


# ------------------------------------------------------------------ limits
@api("limits")
async def limits(request: Request, org: Org, version: str) -> Response:
    s = org.governor.settings
    used = org.governor.used_today()
    jobs_today = org.jobs.query_jobs_today()
    return sf_json(
        {
            "ConcurrentAsyncGetReportInstances": {"Max": 200, "Remaining": 200},
            "ConcurrentSyncReportRuns": {"Max": 20, "Remaining": 20},
            "DailyApiRequests": {
                "Max": s.daily_api_limit,
                "Remaining": max(0, s.daily_api_limit - used),
            },
            "DailyAsyncApexExecutions": {"Max": 250000, "Remaining": 250000},
            "DailyBulkApiBatches": {
                "Max": 15000,
                "Remaining": max(0, 15000 - org.jobs.batches_today()),
            },
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": max(0, 10000 - jobs_today)},
            "DataStorageMB": {"Max": 1073, "Remaining": 1073},
            "FileStorageMB": {"Max": 1073, "Remaining": 1073},
            "HourlyODataCallout": {"Max": 10000, "Remaining": 10000},
            "SingleEmail": {"Max": 5000, "Remaining": 5000},
        }
    )


def routes() -> list[Route]:
    v = "/services/data/v{version}"
    return [
        Route("/services/data", list_versions, methods=["GET"]),
        Route(v, resources, methods=["GET"]),
        Route(f"{v}/sobjects", global_describe, methods=["GET"]),
        Route(f"{v}/sobjects/{{sobject}}/describe", describe, methods=["GET"]),
        Route(f"{v}/sobjects/{{sobject}}/updated", updated, methods=["GET"]),
        Route(f"{v}/sobjects/{{sobject}}/deleted", deleted, methods=["GET"]),
        Route(f"{v}/sobjects/{{sobject}}", sobject_basic, methods=["GET"]),
        Route(f"{v}/sobjects/{{sobject}}", create_record, methods=["POST"]),
        Route(
            f"{v}/sobjects/{{sobject}}/{{record_id}}", record, methods=["GET", "PATCH", "DELETE"]
        ),
        Route(f"{v}/query", query, methods=["GET"]),
        Route(f"{v}/queryAll", query_all, methods=["GET"]),
        Route(f"{v}/query/{{locator}}", query_more, methods=["GET"]),
        Route(f"{v}/queryAll/{{locator}}", query_more, methods=["GET"]),
        Route(f"{v}/composite/sobjects", collections, methods=["POST", "PATCH", "DELETE"]),
        Route(f"{v}/limits", limits, methods=["GET"]),
    ]
