"""The emulator's own ids, checked against ids as Salesforce prints them (not against
optsync's code, which the emulator must be able to catch out)."""

from __future__ import annotations

import pytest

from optsync.emulator.ids import BadId, canonical, case_code, new_id

# 15-character ids and their 18-character forms as Salesforce shows them
KNOWN = [
    ("003RO0000035WQg", "003RO0000035WQgYAM"),
    ("001000000000000", "001000000000000AAA"),
    ("00QAAAAAAAAAAAA", "00QAAAAAAAAAAAA255"),
]


@pytest.mark.parametrize(("id15", "id18"), KNOWN)
def test_case_code_matches_salesforce(id15: str, id18: str) -> None:
    assert case_code(id15) == id18[15:]
    assert canonical(id15) == id18
    assert canonical(id18) == id18


def test_an_id_whose_case_was_lost_is_the_same_record() -> None:
    assert canonical("003RO0000035WQgYAM".lower()) == "003RO0000035WQgYAM"
    assert canonical("003RO0000035WQgYAM".upper()) == "003RO0000035WQgYAM"


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "003RO0000035WQ", "003RO0000035WQg!", "003RO0000035WQgAAA", "0030000000000000A5"],
)
def test_anything_else_is_not_an_id(bad: str) -> None:
    with pytest.raises(BadId):
        canonical(bad)


def test_minted_ids_carry_prefix_pod_number_and_suffix() -> None:
    assert new_id("003", 0) == "0035g0000000000" + case_code("0035g0000000000")
    assert new_id("003", 61)[5:15] == "000000000z"
    assert new_id("003", 62)[5:15] == "0000000010"
    assert canonical(new_id("00Q", 123_456_789)) == new_id("00Q", 123_456_789)
    with pytest.raises(ValueError):
        new_id("003", 62**10)
