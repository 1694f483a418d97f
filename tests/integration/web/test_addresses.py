"""The fast path of ``services.addresses`` agrees with ``domain.emails`` everywhere."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from optsync.domain.emails import InvalidEmail, normalise_email
from optsync.services.addresses import _PLAIN, fast_normalise, normalise_all

ALPHABET = "abcXYZ019._+-@'!#é"


def agrees(value: str) -> None:
    fast = fast_normalise(value)
    if fast is None:
        return
    assert normalise_email(value) == fast


@settings(max_examples=400, deadline=None)
@given(st.from_regex(_PLAIN, fullmatch=True))
def test_plain_addresses_normalise_the_same(value):
    agrees(value)
    agrees(value.upper())
    agrees(f"  {value}\t")


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_anything_else_is_never_vouched_for_wrongly(value):
    try:
        agrees(value)
    except InvalidEmail:
        raise AssertionError(f"fast path accepted an invalid address: {value!r}") from None


def test_edge_cases_fall_back_to_the_full_check():
    for value in [
        "a@localhost.localhost",
        "a@x.test",
        "a@xn--bcher-kva.example",
        "a@ab--cd.example",
        "a@1.23",
        f"{'a' * 65}@example.com",
        "a..b@example.com",
        "é@example.com",
    ]:
        assert fast_normalise(value) is None, value
    out = normalise_all(["Ann@Example.COM", "bad", "é@example.com"])
    assert out[0].email == "ann@example.com" and out[1].error
    assert out[2].email == normalise_email("é@example.com")
