import pytest
from hypothesis import given
from hypothesis import strategies as st

from optsync.domain.ids import (
    InvalidSalesforceId,
    SObjectType,
    checksum_suffix,
    make_id,
    object_type,
    parse_person_id,
    to_18,
)

VECTORS = [
    ("003RO0000035WQg", "YAM"),
    ("001D000000IRFma", "IAH"),
    ("a00D0000008pQRA", "IA2"),
    ("001R00000033I6A", "IAU"),
    ("003xx000004TmiQ", "AAS"),
    ("005R0000000UyrW", "IAS"),
    ("0013h00000Fz0Gz", "AAJ"),
    ("00300000003T2PG", "AA0"),
]


@pytest.mark.parametrize(("id15", "suffix"), VECTORS)
def test_suffix_matches_salesforce_documented_ids(id15, suffix):
    assert checksum_suffix(id15) == suffix
    assert to_18(id15) == id15 + suffix
    assert to_18(id15 + suffix) == id15 + suffix


def test_case_lost_in_a_spreadsheet_is_restored_from_the_suffix():
    assert to_18("003RO0000035WQGYAM".lower()) == "003RO0000035WQgYAM"
    assert to_18("003ro0000035wqgyam".upper()) == "003RO0000035WQgYAM"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("003RO0000035WQ", "15 or 18 characters"),
        ("003RO0000035WQgYA", "15 or 18 characters"),
        ("003RO0000035WQ-", "letters and digits"),
        ("003RO0000035WQgYAA", "do not match its checksum"),
        ("", "15 or 18"),
    ],
)
def test_bad_ids_are_rejected_with_the_reason(value, message):
    with pytest.raises(InvalidSalesforceId, match=message):
        to_18(value)


def test_object_type_from_prefix():
    assert object_type(make_id("003", 1)) is SObjectType.CONTACT
    assert object_type(make_id("00Q", 1)) is SObjectType.LEAD
    with pytest.raises(InvalidSalesforceId, match="neither a Contact"):
        parse_person_id("001D000000IRFma")


@given(st.sampled_from(["003", "00Q"]), st.integers(min_value=0, max_value=62**10 - 1))
def test_made_ids_are_valid_and_round_trip(prefix, number):
    id18 = make_id(prefix, number)
    assert len(id18) == 18
    assert to_18(id18) == id18
    assert to_18(id18[:15]) == id18
    assert to_18(id18.lower()) == id18


@given(
    st.text(
        alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        min_size=15,
        max_size=15,
    )
)
def test_any_15_char_id_converts_and_recovers_case(id15):
    id18 = to_18(id15)
    assert id18[:15] == id15
    assert to_18(id18.upper()) == id18
