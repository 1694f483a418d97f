"""Normalise many email addresses quickly.

``domain.emails.normalise_email`` (email-validator) costs about 25 µs an address, which
alone would spend 250 ms on a 10,000-address suppression check. Almost every real address
is plain ASCII (``first.last+tag@mail.example.com``); for those the normal form is simply
the lower-cased text, so a strict pattern recognises them and skips the full validator.
Anything the pattern does not vouch for (Unicode, Punycode, quoted local parts, special-use
domains, odd lengths) goes through ``normalise_email``, so both paths give the same answer;
``tests/integration/web/test_addresses.py`` checks that property with Hypothesis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from email_validator import SPECIAL_USE_DOMAIN_NAMES

from optsync.domain.emails import InvalidEmail, normalise_email

# Lower-case dot-atom local part; LDH labels without "--" (so no Punycode and none of the
# IDNA-reserved "ab--" forms); an alphabetic top-level label.
_PLAIN = re.compile(
    r"[a-z0-9_+\-]+(?:\.[a-z0-9_+\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
    re.ASCII,
)
_MAX_LOCAL = 64
_MAX_DOMAIN = 253
_MAX_TOTAL = 254
# Special-use names (RFC 6761: test, localhost, invalid …) are refused by the validator;
# single-label ones are checked as the top-level label, any longer one by suffix.
_SPECIAL_TLDS = frozenset(name for name in SPECIAL_USE_DOMAIN_NAMES if "." not in name)
_SPECIAL_SUFFIXES = tuple(name for name in SPECIAL_USE_DOMAIN_NAMES if "." in name)


def fast_normalise(value: str) -> str | None:
    """The normal form of a plain ASCII address, or None when the full check must decide."""
    candidate = value.strip().lower()
    if len(candidate) > _MAX_TOTAL or not _PLAIN.fullmatch(candidate):
        return None
    local, _, domain = candidate.partition("@")
    if len(local) > _MAX_LOCAL or len(domain) > _MAX_DOMAIN or "--" in domain:
        return None
    if domain.rpartition(".")[2] in _SPECIAL_TLDS:
        return None
    for special in _SPECIAL_SUFFIXES:
        if domain == special or domain.endswith("." + special):
            return None
    return candidate


def normalise(value: str) -> str:
    """Like ``normalise_email`` (raises ``InvalidEmail``), fast for plain addresses."""
    return fast_normalise(value) or normalise_email(value)


class Normalised(NamedTuple):
    """One input address: its position, its normal form or why it is invalid.

    A tuple rather than a dataclass: a request builds 10,000 of them."""

    position: int
    given: str
    email: str | None
    error: str | None = None


def normalise_all(values: Iterable[str]) -> list[Normalised]:
    """Normalise every value; invalid ones carry the reason instead of a normal form."""
    out: list[Normalised] = []
    for index, given in enumerate(values):
        try:
            out.append(Normalised(index, given, normalise(given)))
        except InvalidEmail as exc:
            out.append(Normalised(index, given, None, str(exc)))
    return out
