"""Record ids as the emulated org mints and reads them, written for the emulator alone.

Salesforce ids are 15 characters of case-sensitive base 62; the API also accepts and
returns an 18-character form whose last three characters encode, five characters each,
which of the first fifteen are capital letters. That suffix is what lets an id survive a
case-insensitive system, so an 18-character id whose letters were all upper- or
lower-cased is still the same record.

This module deliberately shares no code with optsync's own id handling: the emulator
answers like Salesforce, so a mistake in optsync's ids shows up as a disagreement in the
tests instead of being repeated on both sides.
"""

from __future__ import annotations

import re
import string

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
CASE_CODE = string.ascii_uppercase + "012345"  # 32 symbols: one per 5-bit case pattern
_ID_RE = re.compile(r"[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?")  # fullmatch only
# Every id is read through its suffix (each Bulk row, each collection record), so the
# suffix is computed with two table look-ups per five characters instead of a loop.
_CASE_BITS = str.maketrans({c: "1" if c.isupper() else "0" for c in BASE62})
_SYMBOL_OF = {  # "10000" (first character upper-case: the lowest bit) -> "B"
    "".join("1" if i >> k & 1 else "0" for k in range(5)): CASE_CODE[i] for i in range(32)
}


class BadId(ValueError):
    """Not an id this org could have issued."""


def case_code(head: str) -> str:
    """The three suffix characters for a 15-character id."""
    if len(head) != 15:
        raise BadId(f"an id head has 15 characters, not {len(head)}")
    bits = head.translate(_CASE_BITS)
    try:
        return _SYMBOL_OF[bits[:5]] + _SYMBOL_OF[bits[5:10]] + _SYMBOL_OF[bits[10:]]
    except KeyError:  # a character outside base 62: read it as Python reads its case
        pass
    code = ""
    for start in (0, 5, 10):
        pattern = "".join("1" if c.isupper() else "0" for c in head[start : start + 5])
        code += CASE_CODE[int(pattern[::-1], 2)]  # the first character is the lowest bit
    return code


def canonical(value: str) -> str:
    """The 18-character form of a 15- or 18-character id, as Salesforce reads it.

    An 18-character id is read through its suffix when its head's case was lost (all one
    case); a mixed-case head must already agree with its suffix.
    """
    if not _ID_RE.fullmatch(value):
        raise BadId(f"not a 15- or 18-character id: {value!r}")
    head, tail = value[:15], value[15:].upper()
    if not tail:
        return head + case_code(head)
    if case_code(head) == tail:
        return head + tail
    if head not in (head.upper(), head.lower()):
        raise BadId(f"the suffix of {value!r} does not match its characters")
    restored = _apply_case(head, tail)
    if case_code(restored) != tail:
        raise BadId(f"the suffix of {value!r} cannot describe its characters")
    return restored + tail


def _apply_case(head: str, tail: str) -> str:
    if any(c not in CASE_CODE for c in tail):
        raise BadId(f"{tail!r} is not an id suffix")
    flags = "".join(format(CASE_CODE.index(c), "05b")[::-1] for c in tail)
    return "".join(c.upper() if f == "1" else c.lower() for c, f in zip(head, flags, strict=True))


def new_id(prefix: str, number: int, pod: str = "5g") -> str:
    """An 18-character id: key prefix (3), pod (2), ``number`` in base 62 (10), suffix."""
    if len(prefix) != 3 or len(pod) != 2:
        raise ValueError("a key prefix has 3 characters and a pod 2")
    if not 0 <= number < 62**10:
        raise ValueError(f"{number} does not fit in an id")
    digits = ""
    for _ in range(10):
        number, rest = divmod(number, 62)
        digits = BASE62[rest] + digits
    head = prefix + pod + digits
    return head + case_code(head)
