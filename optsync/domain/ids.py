"""Salesforce record ids: validation, 15 -> 18 conversion, object type from the prefix.

A 15-character id is case-sensitive base 62. The 18-character form appends a 3-character
suffix that records which of the first 15 characters are upper case, which makes the id
safe in case-insensitive systems (spreadsheets, email tools). We always store 18.
"""

from __future__ import annotations

import re
from enum import StrEnum

_SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")  # fullmatch only


class SObjectType(StrEnum):
    CONTACT = "Contact"
    LEAD = "Lead"


KEY_PREFIXES: dict[str, SObjectType] = {"003": SObjectType.CONTACT, "00Q": SObjectType.LEAD}
PREFIX_OF: dict[SObjectType, str] = {v: k for k, v in KEY_PREFIXES.items()}


class InvalidSalesforceId(ValueError):
    """The value is not a usable Contact or Lead id; ``str()`` says why and how to fix it."""


def checksum_suffix(id15: str) -> str:
    """The 3-character suffix Salesforce appends to a 15-character id."""
    if len(id15) != 15:
        raise InvalidSalesforceId(f"expected 15 characters, got {len(id15)}")
    out = []
    for chunk in range(3):
        bits = 0
        for i, ch in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= ch <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX_ALPHABET[bits])
    return "".join(out)


def to_18(value: str) -> str:
    """Validate any 15- or 18-character Salesforce id and return its 18-character form.

    For an 18-character id whose case was lost (an upper- or lower-cased spreadsheet
    column), the suffix tells which characters were upper case; we restore them.
    """
    raw = value.strip()
    if not _ID_RE.fullmatch(raw):
        if len(raw) not in (15, 18):
            raise InvalidSalesforceId(
                f"a Salesforce id has 15 or 18 characters, this one has {len(raw)}"
            )
        raise InvalidSalesforceId("a Salesforce id contains only letters and digits")
    if len(raw) == 15:
        return raw + checksum_suffix(raw)
    head, suffix = raw[:15], raw[15:]
    if checksum_suffix(head) == suffix.upper():
        return head + suffix.upper()
    # Only an id whose letters are all one case can have lost its case; a mixed-case id
    # with the wrong suffix is a typo, not something to "repair".
    case_lost = head in (head.lower(), head.upper())
    restored = _restore_case(head, suffix.upper()) if case_lost else None
    if restored is None:
        raise InvalidSalesforceId(
            "the last 3 characters of this 18-character id do not match its checksum; "
            "copy the id again from Salesforce"
        )
    return restored + suffix.upper()


def _restore_case(head: str, suffix: str) -> str | None:
    if any(ch not in _SUFFIX_ALPHABET for ch in suffix):
        return None
    chars = list(head)
    for chunk, s in enumerate(suffix):
        bits = _SUFFIX_ALPHABET.index(s)
        for i in range(5):
            pos = chunk * 5 + i
            ch = chars[pos]
            upper = bool(bits & (1 << i))
            if upper and not ch.isalpha():
                return None
            chars[pos] = ch.upper() if upper else ch.lower()
    return "".join(chars)


def object_type(id18: str) -> SObjectType:
    """Contact or Lead, from the key prefix; anything else is rejected."""
    prefix = id18[:3]
    try:
        return KEY_PREFIXES[prefix]
    except KeyError:
        raise InvalidSalesforceId(
            f"id prefix {prefix!r} is neither a Contact (003) nor a Lead (00Q)"
        ) from None


RECORD_PREFIXES: dict[str, str] = {"003": "Contact", "00Q": "Lead", "001": "Account"}
"""The objects whose records carry an address (Person Accounts are Accounts, ``001``)."""


def record_object(id18: str) -> str:
    """Contact, Lead or Account (a Person Account), from the key prefix; anything else is
    rejected. Persons are still imported by Contact or Lead id (:func:`parse_person_id`);
    this is for the records an opt-out reaches."""
    try:
        return RECORD_PREFIXES[id18[:3]]
    except KeyError:
        raise InvalidSalesforceId(
            f"id prefix {id18[:3]!r} is not a Contact (003), Lead (00Q) or Account (001)"
        ) from None


def parse_person_id(value: str) -> tuple[str, SObjectType]:
    """Validate a Contact or Lead id; return (18-character id, object type)."""
    id18 = to_18(value)
    return id18, object_type(id18)


def make_id(prefix: str, number: int, pod: str = "5g") -> str:
    """Build a syntactically real 18-character id (used by the emulator and tests).

    Layout: 3-char key prefix, 2-char pod, then ``number`` in base 62 over 10 chars.
    """
    if len(prefix) != 3 or len(pod) != 2:
        raise ValueError("prefix must have 3 characters and pod 2")
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = []
    n = number
    for _ in range(10):
        n, r = divmod(n, 62)
        body.append(digits[r])
    if n:
        raise ValueError("number too large for an id")
    id15 = prefix + pod + "".join(reversed(body))
    return id15 + checksum_suffix(id15)
