"""SOQL built from user data cannot be injected: names are checked, values escaped."""

import pytest
from simple_salesforce.format import format_soql

from optsync.errors import UsageError
from optsync.salesforce import soql
from optsync.services.sync_settings import DEFAULTS, validate_changes

ATTACKS = [
    "HasOptedOutOfEmail = true OR Id != null",
    "Sales_Opt_Out__c FROM Contact --",
    "Email) OR (Id != null",
    "x__c' OR '1'='1",
    "Sales_Opt_Out__c\nFROM User",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_field_names_are_checked_before_they_reach_soql(attack):
    with pytest.raises(UsageError):
        soql.field_name(attack)
    with pytest.raises(UsageError):
        validate_changes(DEFAULTS, {"sales_opt_out_field": attack})


@pytest.mark.parametrize("attack", ["003000000000001' OR Id != '", "00Q\\' OR 1=1", "' --"])
def test_ids_are_validated_and_quoted(attack):
    with pytest.raises(UsageError):
        soql.record_ids([attack], "Contact")
    # and even a raw value would be quoted and escaped by format_soql
    rendered = format_soql("SELECT Id FROM Contact WHERE Id = {}", attack)
    assert rendered.count("'") - rendered.count("\\'") == 2


def test_objects_are_a_closed_list():
    with pytest.raises(UsageError):
        soql.object_name("User")


def test_live_gateway_refuses_an_injected_field(sf_gateway):
    with pytest.raises(UsageError):
        list(sf_gateway.query_opted_out("Contact", ATTACKS[0]))
    assert sf_gateway.api_calls == 0
