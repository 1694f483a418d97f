"""Bulk 2.0 ``sf__Error`` parsing and classification (no I/O)."""

import pytest

from optsync.domain.failures import Outcome, classify
from optsync.salesforce.bulk import parse_sf_error


@pytest.mark.parametrize(
    ("text", "code", "message", "outcome"),
    [
        (
            "ENTITY_IS_DELETED:entity is deleted:--",
            "ENTITY_IS_DELETED",
            "entity is deleted",
            Outcome.FOLLOW_MERGE,
        ),
        (
            "CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--",
            "CANNOT_UPDATE_CONVERTED_LEAD",
            "cannot reference converted lead",
            Outcome.FOLLOW_CONVERSION,
        ),
        (
            "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this record or 1 records: "
            "003RO0000035WQgYAM:--",
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access to this record or 1 records: 003RO0000035WQgYAM",
            Outcome.RETRY,
        ),
        (
            "INVALID_FIELD_FOR_INSERT_UPDATE:Unable to create/update fields: Sales_Opt_Out__c:"
            "Sales_Opt_Out__c --",
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            "Unable to create/update fields: Sales_Opt_Out__c",
            Outcome.PERMANENT,
        ),
        ("", "UNKNOWN_ERROR", "", Outcome.PERMANENT),
        ("something odd", "SOMETHING ODD", "something odd", Outcome.PERMANENT),
    ],
)
def test_sf_error_is_parsed_and_classified(text, code, message, outcome):
    got_code, got_message = parse_sf_error(text)
    assert (got_code, got_message) == (code, message)
    assert classify(400, got_code, got_message).outcome is outcome
