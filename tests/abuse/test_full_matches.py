"""Every validation pattern matches the whole input: a trailing newline (which ``$``
lets through in Python) or any other trailing junk is refused, not saved."""

from __future__ import annotations

import pytest

from optsync.domain.ids import InvalidSalesforceId, to_18
from optsync.domain.schedule import ScheduleError, validate_cron, validate_timezone
from optsync.errors import UsageError
from optsync.logs import _logfmt_value
from optsync.salesforce.config import normalise_api_version
from optsync.salesforce.soql import field_name
from optsync.services.sync_settings import DEFAULTS, validate_changes

SUFFIXES = ["\n", "\r\n", "\n\n", " x", "\x00"]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_the_custom_field_name_setting_refuses_a_trailing_newline(suffix):
    with pytest.raises(UsageError) as info:
        validate_changes(DEFAULTS, {"sales_opt_out_field": "Sales_Opt_Out__c" + suffix})
    assert info.value.field == "sales_opt_out_field"


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_soql_field_names_refuse_a_trailing_newline(suffix):
    with pytest.raises(UsageError):
        field_name("HasOptedOutOfEmail" + suffix)


@pytest.mark.parametrize("suffix", ["\n", "\n\n", "x"])
def test_api_versions_refuse_a_trailing_newline_inside(suffix):
    with pytest.raises(UsageError):
        normalise_api_version("v62.0" + suffix + "1")


@pytest.mark.parametrize("value", ["003000000000001\nAAA", "003000000000001AAA\n\n1"])
def test_salesforce_ids_refuse_newlines(value):
    with pytest.raises(InvalidSalesforceId):
        to_18(value)


@pytest.mark.parametrize("value", ["0 20 * * 1\n2", "0 20 * * mon\x00"])
def test_cron_fields_refuse_newlines(value):
    with pytest.raises(ScheduleError):
        validate_cron(value)


@pytest.mark.parametrize(
    "value", ["Europe/Berlin\nx", "Europe/../Europe/Berlin", "Europe/Berlin\x00", "/etc/localtime"]
)
def test_time_zones_are_iana_names_only(value):
    with pytest.raises(ScheduleError):
        validate_timezone(value)


def test_a_log_value_with_a_trailing_newline_is_quoted_not_bare():
    assert _logfmt_value("abc\n") == '"abc\\n"'


def test_api_patterns_match_the_whole_value():
    """pydantic's patterns run on Rust's regex, where ``$`` is the end of the text."""
    from pydantic import TypeAdapter, ValidationError

    from optsync.web.api.pushes import ErrorCode

    codes = TypeAdapter(ErrorCode)
    assert codes.validate_python("INVALID_FIELD") == "INVALID_FIELD"
    with pytest.raises(ValidationError):
        codes.validate_python("INVALID_FIELD\n")


def test_the_emulator_refuses_an_address_with_a_trailing_newline():
    from optsync.emulator.store import _EMAIL_RE

    assert _EMAIL_RE.fullmatch("ann@example.com")
    assert not _EMAIL_RE.fullmatch("ann@example.com\n")
