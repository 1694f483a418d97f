"""The gateway against the emulator: describe, pushes, lookups, renewal and counting."""

from __future__ import annotations

import pytest

from optsync.domain.failures import Outcome
from optsync.emulator import Emulator
from optsync.errors import UsageError
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import SalesforceGateway, Target

from .conftest import config_for, counters

pytestmark = pytest.mark.emulator

SALES = "Sales_Opt_Out__c"
EMAIL = "HasOptedOutOfEmail"


def test_expired_session_is_renewed_without_losing_the_call(
    emu: Emulator, gateway: SalesforceGateway
) -> None:
    ids = emu.seed(contacts=2)["contact_ids"]
    gateway.limits()
    first_token = gateway.token
    emu.control("POST", "sessions/expire")
    results = gateway.set_opt_out([Target(i, "Contact") for i in ids], EMAIL)
    assert all(r.success for r in results)
    assert gateway.session_renewals == 1 and gateway.token is not first_token
    for rid in ids:
        assert emu.control("GET", f"records/{rid}")[EMAIL] is True
    # the rejected 401 is not charged: our count equals the org's
    assert gateway.api_calls == counters(emu)["total"] == 2
    assert gateway.calls_by_endpoint == counters(emu)["by_endpoint"]


def test_expiry_during_paging_continues_the_query(
    emu: Emulator, gateway: SalesforceGateway
) -> None:
    emu.seed(contacts=2050, opted_out_fraction=1.0)  # two pages of at most 2000
    it = gateway.query_opted_out("Contact", EMAIL)
    first = [next(it) for _ in range(10)]
    emu.control("POST", "sessions/expire")
    rest = list(it)
    assert len(set(first + rest)) == 2050
    assert gateway.session_renewals == 1
    assert gateway.calls_by_endpoint["query"] == 2 == counters(emu)["by_endpoint"]["query"]


@pytest.mark.parametrize("field", [EMAIL, SALES])
def test_check_field_passes_for_both_fields(gateway: SalesforceGateway, field: str) -> None:
    checks = gateway.check_field(field)
    assert [(c.object, c.field, c.ok) for c in checks] == [
        ("Contact", field, True),
        ("Lead", field, True),
    ]
    assert all(c.type == "boolean" and c.updateable for c in checks)


def test_hidden_field_fails_with_the_fix(emu: Emulator, gateway: SalesforceGateway) -> None:
    emu.control("PUT", f"fields/Lead/{SALES}", {"visible": False, "updateable": False})
    contact, lead = gateway.check_field(SALES)
    assert contact.ok
    assert not lead.ok and not lead.exists
    assert lead.fix is not None and "field-level security" in lead.fix
    assert "page layouts" in lead.fix and "package" in lead.fix


def test_read_only_field_fails_with_the_fix(emu: Emulator, gateway: SalesforceGateway) -> None:
    emu.control("PUT", f"fields/Contact/{SALES}", {"visible": True, "updateable": False})
    contact, lead = gateway.check_field(SALES)
    assert lead.ok
    assert contact.exists and not contact.updateable and not contact.ok
    assert contact.fix is not None and "Field-Level Security" in contact.fix


def test_set_opt_out_on_250_mixed_records(emu: Emulator, gateway: SalesforceGateway) -> None:
    seeded = emu.seed(contacts=125, leads=125)
    contacts, leads = seeded["contact_ids"], seeded["lead_ids"]
    deleted, converted = contacts[7], leads[3]
    emu.control("DELETE", f"records/{deleted}")
    new_contact = emu.control("POST", f"records/{converted}/convert")["contact_id"]
    # interleave the objects: the gateway must group them within each call
    targets = [
        t
        for pair in zip(contacts, leads, strict=True)
        for t in (Target(pair[0], "Contact"), Target(pair[1], "Lead"))
    ]
    results = gateway.set_opt_out(targets, SALES)
    assert [r.salesforce_id for r in results] == [t.salesforce_id for t in targets]
    by_id = {r.salesforce_id: r for r in results}
    assert by_id[deleted].code == "ENTITY_IS_DELETED"
    assert by_id[deleted].classification is not None
    assert by_id[deleted].classification.outcome is Outcome.FOLLOW_MERGE
    assert by_id[converted].code == "CANNOT_UPDATE_CONVERTED_LEAD"
    assert by_id[converted].classification is not None
    assert by_id[converted].classification.outcome is Outcome.FOLLOW_CONVERSION
    assert sum(r.success for r in results) == 248
    assert gateway.calls_by_endpoint["composite/sobjects"] == 2
    assert emu.control("GET", f"records/{contacts[0]}")[SALES] is True
    assert emu.control("GET", f"records/{leads[-1]}")[SALES] is True
    # the follow-up lookups the worker makes
    assert gateway.converted_contacts([converted, leads[0]]) == {
        converted: new_contact,
        leads[0]: None,
    }


def test_invalid_and_duplicate_targets(emu: Emulator, gateway: SalesforceGateway) -> None:
    contact = emu.seed(contacts=1)["contact_ids"][0]
    targets = [
        Target(contact, "Contact"),
        Target("003' OR Id != '", "Contact"),
        Target(contact[:15], "Contact"),
        Target(contact, "Lead"),
    ]
    results = gateway.set_opt_out(targets, EMAIL)
    assert [r.success for r in results] == [True, False, True, False]
    assert results[1].code == results[3].code == "MALFORMED_ID"
    assert results[1].classification is not None
    assert results[1].classification.outcome is Outcome.PERMANENT
    assert results[2].salesforce_id == contact[:15]
    assert gateway.api_calls == 1


def test_missing_field_on_push_is_classified_per_record(
    emu: Emulator, gateway: SalesforceGateway
) -> None:
    contact = emu.seed(contacts=1)["contact_ids"][0]
    emu.control("PUT", f"fields/Contact/{SALES}", {"visible": False, "updateable": False})
    [result] = gateway.set_opt_out([Target(contact, "Contact")], SALES)
    assert not result.success and result.code == "INVALID_FIELD"
    assert result.classification is not None
    assert result.classification.outcome is Outcome.PERMANENT


def test_converted_contacts_in_chunks(emu: Emulator, gateway: SalesforceGateway) -> None:
    leads = emu.seed(leads=230)["lead_ids"]
    converted = {
        leads[0]: emu.control("POST", f"records/{leads[0]}/convert")["contact_id"],
        leads[229]: emu.control("POST", f"records/{leads[229]}/convert")["contact_id"],
    }
    found = gateway.converted_contacts([lid[:15] for lid in leads])
    assert len(found) == 230
    assert {k: v for k, v in found.items() if v} == converted
    assert gateway.calls_by_endpoint["query"] == 2


def test_merged_masters(emu: Emulator, gateway: SalesforceGateway) -> None:
    a, b, c = emu.seed(contacts=3)["contact_ids"]
    emu.control("POST", f"records/{b}/merge", {"master_id": a})
    emu.control("DELETE", f"records/{c}")
    assert gateway.merged_masters([a, b, c], "Contact") == {a: None, b: a, c: None}
    assert gateway.calls_by_endpoint["queryAll"] == 1


def test_query_opted_out_skips_converted_leads(emu: Emulator, gateway: SalesforceGateway) -> None:
    seeded = emu.seed(contacts=3, leads=3, opted_out_fraction=1.0)
    emu.control("POST", f"records/{seeded['lead_ids'][0]}/convert")
    assert set(gateway.query_opted_out("Lead", EMAIL)) == set(seeded["lead_ids"][1:])
    contacts = set(gateway.query_opted_out("Contact", EMAIL))
    assert set(seeded["contact_ids"]) <= contacts  # plus the Contact the conversion made


@pytest.mark.parametrize(
    "field",
    [
        "HasOptedOutOfEmail = true OR Id != null",
        "Id FROM Lead WHERE Id != null --",
        "Sales_Opt_Out__c' OR '1'='1",
    ],
)
def test_soql_injection_in_field_names_is_rejected_before_any_call(
    emu: Emulator, gateway: SalesforceGateway, field: str
) -> None:
    with pytest.raises(UsageError):
        list(gateway.query_opted_out("Contact", field))
    with pytest.raises(UsageError):
        gateway.check_field(field)
    with pytest.raises(UsageError):
        gateway.set_opt_out([], field)
    with pytest.raises(UsageError):
        list(gateway.query_opted_out("Contact; DELETE", EMAIL))
    assert gateway.api_calls == 0 and counters(emu)["total"] == 0


def test_limits_and_api_usage(emu: Emulator, gateway: SalesforceGateway) -> None:
    assert gateway.api_usage() is None
    limits = gateway.limits()
    assert limits["DailyApiRequests"]["Max"] == 1_000_000
    used, total = gateway.api_usage() or (None, None)
    assert total == 1_000_000 and used == 1


def test_call_level_failures_are_classified(emu: Emulator, gateway: SalesforceGateway) -> None:
    emu.settings(daily_api_limit=1)
    gateway.limits()
    with pytest.raises(SalesforceCallError) as info:
        gateway.limits()
    assert info.value.status == 403
    assert info.value.outcome is Outcome.PAUSE_DAILY_LIMIT
    assert info.value.code == "REQUEST_LIMIT_EXCEEDED"


def test_transient_faults_surface_as_retry(emu: Emulator, gateway: SalesforceGateway) -> None:
    emu.settings(fault_rate=1.0)
    with pytest.raises(SalesforceCallError) as info:
        gateway.limits()
    assert info.value.outcome is Outcome.RETRY
    assert info.value.code in ("SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW")


def test_connection_refused_is_retry(emu: Emulator) -> None:
    gw = SalesforceGateway(config_for(emu), timeout=(1.0, 1.0))
    gw.connect()
    assert gw._client is not None
    gw._client.base_url = "https://127.0.0.1:9/services/data/v62.0/"
    with pytest.raises(SalesforceCallError) as info:
        gw.limits()
    assert info.value.status is None and info.value.outcome is Outcome.RETRY


def test_get_record(emu: Emulator, gateway: SalesforceGateway) -> None:
    a, b = emu.seed(contacts=2, opted_out_fraction=1.0)["contact_ids"]
    emu.control("DELETE", f"records/{b}")
    record = gateway.get_record("Contact", a[:15], [EMAIL, "Email"])
    assert record is not None and record["Id"] == a and record[EMAIL] is True
    assert gateway.get_record("Contact", b, [EMAIL]) is None
    with pytest.raises(UsageError):
        gateway.get_record("Contact", a, ["Email) OR (Id"])
    assert gateway.calls_by_endpoint == counters(emu)["by_endpoint"]


def test_raw_request_is_counted_and_renewed(emu: Emulator, gateway: SalesforceGateway) -> None:
    gateway.connect()
    emu.control("POST", "sessions/expire")
    response = gateway.request("limits", "GET", "limits/")
    assert response.status_code == 200 and "DailyApiRequests" in response.json()
    assert gateway.session_renewals == 1 and gateway.api_calls == 1
