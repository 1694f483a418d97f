"""The emulator's Pub/Sub API (Change Data Capture) driven by a real grpcio client over TLS.

Each test subscribes like a product would: call metadata from an OAuth login, a
``Subscribe`` stream fed from a queue, payloads decoded with the schema ``GetSchema``
serves. Timings are shortened through ``/__emulator__/pubsub/settings``.
"""

from __future__ import annotations

import io
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import grpc
import pytest

from optsync.emulator import Emulator, EmulatorOptions
from optsync.emulator.pubsub.capture import ADMIN_USER_ID
from optsync.emulator.pubsub.schemas import EntitySchema, read_bitmap
from optsync.emulator.schema import fields_of
from optsync.emulator.server import build_org
from optsync.pubsub_api import pb, rpc

pytestmark = pytest.mark.emulator
CONTACTS = "/data/ContactChangeEvent"
LEADS = "/data/LeadChangeEvent"
ALL = "/data/ChangeEvents"
OWN = {"Sforce-Call-Options": "client=optsync"}


class Client:
    """What a Pub/Sub client holds: a TLS channel, its auth metadata and schema cache."""

    def __init__(self, emu: Emulator, token: dict[str, Any] | None = None):
        token = token or emu.token()
        self.metadata = (
            ("accesstoken", token["access_token"]),
            ("instanceurl", token["instance_url"]),
            ("tenantid", token["id"].split("/")[-2]),  # the org id of the identity URL
        )
        creds = grpc.ssl_channel_credentials(Path(emu.ca_bundle).read_bytes())
        self.channel = grpc.secure_channel(emu.pubsub_url.removeprefix("https://"), creds)
        self.stub = rpc.PubSubStub(self.channel)
        self._schemas: dict[str, Any] = {}

    def decode(self, event: Any) -> dict[str, Any]:
        sid = event.event.schema_id
        if sid not in self._schemas:
            info = self.stub.GetSchema(
                pb.SchemaRequest(schema_id=sid), metadata=self.metadata, timeout=10
            )
            self._schemas[sid] = fastavro.parse_schema(json.loads(info.schema_json))
        value = fastavro.schemaless_reader(
            io.BytesIO(event.event.payload), self._schemas[sid], None
        )
        assert isinstance(value, dict)
        return value

    def subscribe(self, topic: str, n: int = 100, **kw: Any) -> Sub:
        return Sub(self, pb.FetchRequest(topic_name=topic, num_requested=n, **kw))


class Sub:
    """One Subscribe stream: requests from a queue, responses read by a thread."""

    def __init__(self, client: Client, first: Any):
        self.client = client
        self.requests: queue.Queue[Any] = queue.Queue()
        self.requests.put(first)
        self.responses: queue.Queue[Any] = queue.Queue()
        self.call = client.stub.Subscribe(iter(self.requests.get, None), metadata=client.metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for response in self.call:
                self.responses.put(response)
        except grpc.RpcError as exc:
            self.responses.put(exc)

    def request(self, n: int, topic: str = "") -> None:
        self.requests.put(pb.FetchRequest(topic_name=topic, num_requested=n))

    def next(self, timeout: float = 10) -> Any:
        item = self.responses.get(timeout=timeout)
        if isinstance(item, grpc.RpcError):
            raise item
        return item

    def events(self, count: int, timeout: float = 10) -> list[Any]:
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            out += self.next(max(0.01, deadline - time.monotonic())).events
        return out

    def decoded(self, count: int) -> list[dict[str, Any]]:
        return [self.client.decode(e) for e in self.events(count)]

    def quiet(self, seconds: float) -> bool:
        """True if nothing arrives for ``seconds``."""
        try:
            self.responses.get(timeout=seconds)
        except queue.Empty:
            return True
        return False

    def error(self, timeout: float = 10) -> grpc.RpcError:
        deadline = time.monotonic() + timeout
        while True:
            item = self.responses.get(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(item, grpc.RpcError):
                return item

    def close(self) -> None:
        self.requests.put(None)
        self.call.cancel()


def error_code(exc: grpc.RpcError) -> str:
    trailers = dict(exc.trailing_metadata() or ())  # type: ignore[attr-defined]
    return str(trailers.get("error-code", ""))


def ready(emu: Emulator, streams: int = 1) -> None:
    """Wait until the emulator has taken the first request of ``streams`` streams."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = emu.control("GET", "pubsub")
        if sum(1 for s in state["streams"] if s["topic"]) >= streams:
            return
        time.sleep(0.02)
    raise AssertionError("the stream never started")


@pytest.fixture
def client(emu: Emulator) -> Iterator[Client]:
    c = Client(emu)
    yield c
    c.channel.close()


def new_contact(sf: Any, **values: Any) -> str:
    return str(sf.Contact.create({"LastName": "Lane", **values}, headers=OWN)["id"])


def header(event: dict[str, Any]) -> dict[str, Any]:
    return dict(event["ChangeEventHeader"])


# ------------------------------------------------------------------ topics and schemas
def test_topics_are_case_sensitive_and_schemas_null_first(emu: Emulator, client: Client):
    md = client.metadata
    for topic in (CONTACTS, LEADS, ALL):
        info = client.stub.GetTopic(pb.TopicRequest(topic_name=topic), metadata=md, timeout=10)
        assert info.can_subscribe and not info.can_publish
        assert info.tenant_guid == md[2][1]
    with pytest.raises(grpc.RpcError) as exc:
        client.stub.GetTopic(pb.TopicRequest(topic_name="/data/contactchangeevent"), metadata=md)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    info = client.stub.GetTopic(pb.TopicRequest(topic_name=CONTACTS), metadata=md, timeout=10)
    schema = json.loads(
        client.stub.GetSchema(pb.SchemaRequest(schema_id=info.schema_id), metadata=md).schema_json
    )
    assert schema["name"] == "ContactChangeEvent"
    assert schema["fields"][0]["name"] == "ChangeEventHeader"
    assert all(f["type"][0] == "null" for f in schema["fields"][1:])
    name = next(f for f in schema["fields"] if f["name"] == "Name")
    assert [s["name"] for s in name["type"][1]["fields"]] == ["Salutation", "FirstName", "LastName"]


def test_the_schema_id_changes_with_the_field_set():
    with_field = EntitySchema("Contact", fields_of("Contact", sales_opt_out=True))
    without = EntitySchema("Contact", fields_of("Contact", sales_opt_out=False))
    again = EntitySchema("Contact", fields_of("Contact", sales_opt_out=True))
    assert with_field.id != without.id
    assert with_field.id == again.id


def test_publish_and_managed_subscribe_are_unimplemented(client: Client):
    with pytest.raises(grpc.RpcError) as exc:
        client.stub.Publish(pb.PublishRequest(topic_name=CONTACTS), metadata=client.metadata)
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    call = client.stub.ManagedSubscribe(iter([pb.ManagedFetchRequest()]), metadata=client.metadata)
    with pytest.raises(grpc.RpcError) as exc:
        next(iter(call))
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ------------------------------------------------------------------ replay presets
def test_latest_earliest_and_custom(emu: Emulator, sf: Any, client: Client):
    before = new_contact(sf)
    latest = client.subscribe(CONTACTS)
    ready(emu)
    after = new_contact(sf)
    [event] = latest.events(1)
    assert header(client.decode(event))["recordIds"] == [after]

    earliest = client.subscribe(CONTACTS, replay_preset=pb.ReplayPreset.EARLIEST)
    got = earliest.events(2)
    assert [header(client.decode(e))["recordIds"][0] for e in got] == [before, after]
    assert len(got[0].replay_id) == 8 and got[0].replay_id < got[1].replay_id

    custom = client.subscribe(
        CONTACTS, replay_preset=pb.ReplayPreset.CUSTOM, replay_id=got[0].replay_id
    )
    [resumed] = custom.events(1)
    assert resumed.replay_id == got[1].replay_id  # CUSTOM starts after the id
    for s in (latest, earliest, custom):
        s.close()


def test_an_expired_replay_id_is_corrupted(emu: Emulator, sf: Any, client: Client):
    emu.control("PUT", "pubsub/settings", {"retention_s": 0.3})
    sub = client.subscribe(CONTACTS, replay_preset=pb.ReplayPreset.EARLIEST)
    new_contact(sf)
    [old] = sub.events(1)
    sub.close()
    time.sleep(0.5)
    new_contact(sf)  # the old event is past retention now
    stale = client.subscribe(
        CONTACTS, replay_preset=pb.ReplayPreset.CUSTOM, replay_id=old.replay_id
    )
    exc = stale.error()
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_code(exc) == "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
    bogus = client.subscribe(CONTACTS, replay_preset=pb.ReplayPreset.CUSTOM, replay_id=b"\x01")
    assert error_code(bogus.error()).endswith("replayid.validation.failed")


# ------------------------------------------------------------------ write paths
def test_rest_writes_carry_header_payload_and_own_client(emu: Emulator, sf: Any, client: Client):
    sub = client.subscribe(CONTACTS)
    ready(emu)
    cid = new_contact(sf, Email="ann@example.com")
    sf.Contact.update(cid, {"HasOptedOutOfEmail": True, "Email": None}, headers=OWN)
    sf.Contact.delete(cid)  # no call options: no client in the origin
    created, updated, deleted = sub.decoded(3)
    h = header(created)
    assert h["changeType"] == "CREATE" and h["entityName"] == "Contact"
    assert h["changeOrigin"] == "com/salesforce/api/rest/59.0;client=optsync"
    assert h["commitUser"].startswith("005") and h["commitUser"] != ADMIN_USER_ID
    assert created["Email"] == "ann@example.com" and created["Name"]["LastName"] == "Lane"
    assert isinstance(created["CreatedDate"], int)  # epoch ms
    u = header(updated)
    assert u["changeType"] == "UPDATE" and u["recordIds"] == [cid]
    schema = EntitySchema("Contact", fields_of("Contact", sales_opt_out=True))
    assert set(read_bitmap(schema, u["changedFields"])) == {
        "Email",
        "HasOptedOutOfEmail",
        "LastModifiedDate",
    }
    assert read_bitmap(schema, u["nulledFields"]) == ["Email"]
    assert u["changedFields"][0].startswith("0x")
    assert updated["HasOptedOutOfEmail"] is True and updated["Name"] is None
    assert u["commitNumber"] > h["commitNumber"]
    assert u["commitTimestamp"] >= h["commitTimestamp"] > 1_600_000_000_000
    d = header(deleted)
    assert d["changeType"] == "DELETE" and d["changeOrigin"] == "com/salesforce/api/rest/59.0"
    sub.close()


def test_compound_name_bitmap(emu: Emulator, sf: Any, client: Client):
    cid = new_contact(sf, FirstName="Ann")
    sub = client.subscribe(CONTACTS)
    ready(emu)
    sf.Contact.update(cid, {"FirstName": "Anna"})
    [event] = sub.decoded(1)
    changed = header(event)["changedFields"]
    schema = EntitySchema("Contact", fields_of("Contact", sales_opt_out=True))
    position = schema.names.index("Name")
    assert f"{position}-0x02" in changed  # FirstName is the compound's second part
    assert "Name.FirstName" in read_bitmap(schema, changed)
    assert event["Name"] == {"Salutation": None, "FirstName": "Anna", "LastName": None}
    sub.close()


def test_a_collection_merges_one_change_into_one_event(emu: Emulator, sf: Any, client: Client):
    ids = [new_contact(sf) for _ in range(3)]
    sub = client.subscribe(ALL)
    ready(emu)
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": i, "HasOptedOutOfEmail": True} for i in ids
        ],
    }
    sf.restful("composite/sobjects", method="PATCH", json=body, headers=OWN)
    # an allOrNone collection that fails commits nothing and emits nothing
    bad = {
        "allOrNone": True,
        "records": [
            *body["records"][:1],
            {"attributes": {"type": "Contact"}, "id": "003000000000000AAA", "LastName": "x"},
        ],
    }
    sf.restful("composite/sobjects", method="PATCH", json=bad)
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
    first, second = sub.decoded(2)
    h = header(first)
    assert h["changeType"] == "UPDATE" and sorted(h["recordIds"]) == sorted(ids)
    assert h["changeOrigin"].endswith(";client=optsync")
    assert header(second)["recordIds"] == [lead] and header(second)["entityName"] == "Lead"
    sub.close()


def test_bulk_ingest_events_say_bulkapi(emu: Emulator, sf: Any, client: Client):
    ids = [new_contact(sf) for _ in range(2)]
    sub = client.subscribe(CONTACTS)
    ready(emu)
    http = emu.http()
    auth = {"Authorization": f"Bearer {client.metadata[0][1]}", **OWN}
    base = f"{emu.instance_url}/services/data/v59.0/jobs/ingest"
    job = http.post(
        base, json={"object": "Contact", "operation": "update"}, headers=auth, timeout=30
    ).json()
    csv = "Id,HasOptedOutOfEmail\n" + "".join(f"{i},true\n" for i in ids)
    http.put(
        f"{base}/{job['id']}/batches",
        data=csv,
        headers={**auth, "Content-Type": "text/csv"},
        timeout=30,
    )
    http.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}, headers=auth, timeout=30)
    [event] = sub.decoded(1)
    h = header(event)
    assert h["changeOrigin"] == "com/salesforce/api/bulkapi/59.0;client=optsync"
    assert sorted(h["recordIds"]) == sorted(ids)
    sub.close()


def test_conversion_merge_undelete_and_control_writes(emu: Emulator, sf: Any, client: Client):
    lead = sf.Lead.create({"LastName": "L", "Company": "C"})["id"]
    a, b = new_contact(sf), new_contact(sf)
    sub = client.subscribe(ALL)
    ready(emu)
    contact = emu.control("POST", f"records/{lead}/convert")["contact_id"]
    created, converted = sub.decoded(2)
    assert header(created)["changeType"] == "CREATE" and header(created)["recordIds"] == [contact]
    assert header(converted)["entityName"] == "Lead" and header(converted)["changeType"] == "UPDATE"
    assert header(created)["transactionKey"] == header(converted)["transactionKey"]
    assert [header(created)["sequenceNumber"], header(converted)["sequenceNumber"]] == [1, 2]
    assert header(created)["commitUser"] == ADMIN_USER_ID  # a user in the org, not the API
    assert header(created)["changeOrigin"] == ""

    emu.control("POST", f"records/{b}/merge", {"master_id": a})
    [merged] = sub.decoded(1)
    assert header(merged)["changeType"] == "DELETE" and header(merged)["recordIds"] == [b]

    emu.control("PATCH", f"records/{a}", {"HasOptedOutOfEmail": True})
    [ticked] = sub.decoded(1)
    assert header(ticked)["commitUser"] == ADMIN_USER_ID and ticked["HasOptedOutOfEmail"] is True

    store = emu.org.store
    with store.transaction():  # the recycle bin gives the record back
        store.conn.execute('UPDATE "Contact" SET "IsDeleted" = 0 WHERE "Id" = ?', (b,))
    [undeleted] = sub.decoded(1)
    assert header(undeleted)["changeType"] == "UNDELETE"
    sub.close()


def test_seeding_emits_nothing(emu: Emulator, client: Client):
    sub = client.subscribe(ALL)
    ready(emu)
    emu.seed(contacts=5, leads=5)
    assert emu.control("GET", "pubsub")["retained"] == 0
    sub.close()


# ------------------------------------------------------------------ flow control
def test_flow_control_pending_and_clamp(emu: Emulator, sf: Any, client: Client):
    sub = client.subscribe(CONTACTS, n=2)
    ready(emu)
    for _ in range(4):
        new_contact(sf)
    got = sub.events(2)
    assert len(got) == 2
    assert sub.quiet(0.5)  # nothing more until asked
    sub.request(500)
    response = sub.next()
    assert len(response.events) == 2 and response.pending_num_requested == 98  # clamped at 100
    sub.close()


def test_keepalive_carries_the_latest_replay_id(emu: Emulator, sf: Any, client: Client):
    emu.control("PUT", "pubsub/settings", {"keepalive_s": 0.3})
    new_lead = sf.Lead.create({"LastName": "L", "Company": "C"})  # another topic
    sub = client.subscribe(CONTACTS, n=5)
    keepalive = sub.next(5)
    assert keepalive.events == [] and keepalive.pending_num_requested == 5
    state = emu.control("GET", "pubsub")
    assert keepalive.latest_replay_id.hex() == state["latest_replay_id"]
    assert new_lead["success"]
    resumed = client.subscribe(
        CONTACTS, replay_preset=pb.ReplayPreset.CUSTOM, replay_id=keepalive.latest_replay_id
    )
    cid = new_contact(sf)
    [event] = resumed.events(1)
    assert header(client.decode(event))["recordIds"] == [cid]
    sub.close()
    resumed.close()


def test_a_stream_nobody_asks_of_closes(emu: Emulator, sf: Any, client: Client):
    emu.control("PUT", "pubsub/settings", {"idle_timeout_s": 0.4})
    sub = client.subscribe(CONTACTS, n=1)
    ready(emu)
    new_contact(sf)
    assert len(sub.events(1)) == 1
    exc = sub.error(5)
    assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_the_delivery_allocation_runs_out(emu: Emulator, sf: Any, client: Client):
    emu.control("PUT", "pubsub/settings", {"daily_delivery_limit": 3})
    one, two = client.subscribe(CONTACTS), client.subscribe(CONTACTS)
    ready(emu, 2)
    new_contact(sf)
    assert len(one.events(1)) == 1 and len(two.events(1)) == 1  # two subscribers count twice
    new_contact(sf)
    new_contact(sf)
    outcomes = []
    for s in (one, two):
        try:
            outcomes.append(len(s.events(2, timeout=3)))
        except grpc.RpcError as exc:
            outcomes.append(error_code(exc))
    assert "sfdc.platform.eventbus.grpc.subscription.limit.exceeded" in outcomes
    assert emu.control("GET", "pubsub")["deliveries_today"] == 3


def test_a_second_topic_on_one_stream_is_invalid(emu: Emulator, client: Client):
    sub = client.subscribe(CONTACTS, n=1)
    ready(emu)
    sub.request(1, topic=LEADS)
    assert sub.error().code() == grpc.StatusCode.INVALID_ARGUMENT


# ------------------------------------------------------------------ injected faults
def test_gap_and_overflow_events(emu: Emulator, sf: Any, client: Client):
    cid = new_contact(sf)
    sub = client.subscribe(CONTACTS)
    ready(emu)
    emu.control("POST", "pubsub/gap", {"record_ids": [cid], "change_type": "UPDATE"})
    emu.control("POST", "pubsub/overflow", {"object": "Contact"})
    gap, overflow = sub.decoded(2)
    assert header(gap)["changeType"] == "GAP_UPDATE" and header(gap)["recordIds"] == [cid]
    assert gap["Name"] is None and gap["Email"] is None  # header only
    assert header(overflow)["changeType"] == "GAP_OVERFLOW" and header(overflow)["recordIds"] == []

    emu.control("PUT", "pubsub/settings", {"overflow_threshold": 2})
    records = [{"attributes": {"type": "Contact"}, "LastName": f"N{i}"} for i in range(3)]
    sf.restful("composite/sobjects", method="POST", json={"records": records})
    first, second, last = sub.decoded(3)
    assert [header(e)["changeType"] for e in (first, second, last)] == [
        "CREATE",
        "CREATE",
        "GAP_OVERFLOW",
    ]
    sub.close()


def test_drop_and_stall(emu: Emulator, sf: Any, client: Client):
    sub = client.subscribe(CONTACTS)
    ready(emu)
    assert emu.control("POST", "pubsub/streams/drop") == {"dropped": 1}
    assert sub.error().code() == grpc.StatusCode.UNAVAILABLE

    emu.control("PUT", "pubsub/settings", {"keepalive_s": 0.2})
    stalled = client.subscribe(CONTACTS)
    ready(emu)
    stalled.next()  # a keepalive while healthy
    assert emu.control("POST", "pubsub/streams/stall") == {"stalled": 1}
    while not stalled.quiet(0.3):  # a keepalive may have been on its way
        pass
    new_contact(sf)
    assert stalled.quiet(1.0)  # neither events nor keepalives
    stalled.close()
    fresh = client.subscribe(CONTACTS, replay_preset=pb.ReplayPreset.EARLIEST)
    assert len(fresh.events(1)) == 1  # a rebuilt stream works
    fresh.close()


# ------------------------------------------------------------------ auth and selection
def test_auth_failures(emu: Emulator, sf: Any, client: Client):
    for index, bad in (
        (0, "00D!nope"),
        (1, "https://elsewhere.example"),
        (2, "00D000000000000AAA"),
    ):
        metadata = list(client.metadata)
        metadata[index] = (metadata[index][0], bad)
        with pytest.raises(grpc.RpcError) as exc:
            client.stub.GetTopic(pb.TopicRequest(topic_name=CONTACTS), metadata=metadata)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_code(exc.value) == "sfdc.platform.eventbus.grpc.service.auth.error"
    sub = client.subscribe(CONTACTS)
    ready(emu)
    emu.control("POST", "sessions/expire")
    emu.control("PATCH", f"records/{new_contact(emu.salesforce())}", {"FirstName": "x"})
    exc = sub.error()
    assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_code(exc) == "sfdc.platform.eventbus.grpc.service.auth.error"


def test_unselected_entities_have_no_topic_and_no_events(emu: Emulator, sf: Any, client: Client):
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact"]})
    sub = client.subscribe(LEADS)
    assert sub.error().code() == grpc.StatusCode.NOT_FOUND
    every = client.subscribe(ALL)
    ready(emu)
    sf.Lead.create({"LastName": "L", "Company": "C"})
    cid = new_contact(sf)
    [event] = every.decoded(1)
    assert header(event)["recordIds"] == [cid]
    every.close()
    emu.reset()  # back to Contact and Lead
    assert emu.control("GET", "pubsub")["selected"] == ["Contact", "Lead"]


def test_an_org_without_cdc_selects_nothing(tmp_path: Path):
    org, _ = build_org(EmulatorOptions(data_dir=tmp_path, memory=True, cdc=False))
    try:
        assert org.pubsub is not None
        assert org.pubsub.topic_entities(ALL) is None
        assert org.pubsub.topic_entities(CONTACTS) is None
    finally:
        org.jobs.close()
        org.store.close()


def test_an_entity_not_selected_has_no_capture_triggers(tmp_path: Path):
    """Capture costs nothing for an entity not selected: its writes fire no trigger.

    A trigger that reads every column of a wide row costs a few microseconds per updated
    row even when it logs nothing (the nightly bench's emulator runs ``--without-cdc``).
    """
    org, _ = build_org(EmulatorOptions(data_dir=tmp_path, memory=True, cdc=False))
    bus, store = org.pubsub, org.store
    assert bus is not None

    def triggered() -> list[str]:
        rows = store.conn.execute(
            "SELECT tbl_name FROM sqlite_temp_master WHERE type = 'trigger' ORDER BY tbl_name"
        )
        return sorted({r[0] for r in rows})

    try:
        assert triggered() == []
        bus.select(["Contact"])
        assert triggered() == ["Contact"]
        cid = store.create("Contact", {"LastName": "Lane"}, enforce_fls=False)
        store.create("Lead", {"LastName": "Lane", "Company": "C"}, enforce_fls=False)
        assert bus.state()["retained"] == 1
        bus.select([])
        assert triggered() == []
        store.update("Contact", cid, {"FirstName": "Ann"}, enforce_fls=False)
        assert bus.state()["retained"] == 1
        bus.select(["Contact", "Lead"])
        assert triggered() == ["Contact", "Lead"]
        store.update("Contact", cid, {"FirstName": "Bo"}, enforce_fls=False)
        assert bus.state()["retained"] == 2
        org.reset()  # back to the startup selection: none
        assert triggered() == []
    finally:
        org.jobs.close()
        org.store.close()


def test_an_update_that_changes_no_value_still_moves_the_stamps_and_emits_an_update(
    emu: Emulator, sf: Any, client: Client
):
    """Bulk ingest setting a field to the value it has: as every update, it moves
    LastModifiedDate and SystemModstamp, and its change event is an UPDATE whose changed
    fields are LastModifiedDate alone (the documented behaviour, see docs/emulator.md)."""
    cid = new_contact(sf, HasOptedOutOfEmail=True)
    before = sf.Contact.get(cid)
    sub = client.subscribe(CONTACTS)
    ready(emu)
    time.sleep(0.005)  # stamps have millisecond resolution
    http = emu.http()
    auth = {"Authorization": f"Bearer {client.metadata[0][1]}", **OWN}
    base = f"{emu.instance_url}/services/data/v59.0/jobs/ingest"
    job = http.post(
        base, json={"object": "Contact", "operation": "update"}, headers=auth, timeout=30
    ).json()
    http.put(
        f"{base}/{job['id']}/batches",
        data=f"Id,HasOptedOutOfEmail,LastName\n{cid},true,Lane\n",
        headers={**auth, "Content-Type": "text/csv"},
        timeout=30,
    )
    http.patch(f"{base}/{job['id']}", json={"state": "UploadComplete"}, headers=auth, timeout=30)
    [event] = sub.decoded(1)
    sub.close()
    h = header(event)
    assert h["changeType"] == "UPDATE" and h["recordIds"] == [cid]
    schema = EntitySchema("Contact", fields_of("Contact", sales_opt_out=True))
    assert read_bitmap(schema, h["changedFields"]) == ["LastModifiedDate"]
    assert event["HasOptedOutOfEmail"] is None and event["LastModifiedDate"] is not None
    after = sf.Contact.get(cid)
    assert after["HasOptedOutOfEmail"] is True and after["LastName"] == "Lane"
    assert after["SystemModstamp"] > before["SystemModstamp"]
    assert after["LastModifiedDate"] > before["LastModifiedDate"]
    assert h["commitTimestamp"] > 0


def test_the_connection_facts_name_the_pubsub_url(emu: Emulator):
    assert emu.summary()["pubsub_url"].startswith("https://127.0.0.1:")


def test_writes_to_an_entity_not_selected_generate_no_events(emu: Emulator, sf: Any):
    """As in Salesforce: change events exist only for entities selected for CDC."""
    emu.control("PUT", "pubsub/entities", {"selected": ["Contact"]})
    try:
        before = emu.control("GET", "pubsub")["retained"]
        sf.Lead.create({"LastName": "Quiet", "Company": "Acme"})
        assert emu.control("GET", "pubsub")["retained"] == before
        new_contact(sf)
        assert emu.control("GET", "pubsub")["retained"] == before + 1
    finally:
        emu.control("PUT", "pubsub/entities", {"selected": ["Contact", "Lead"]})
