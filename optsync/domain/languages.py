"""Which language a public page speaks: ``Accept-Language`` negotiated against the
catalogues we ship.

The header's grammar is RFC 9110 §12.5.4: a comma-separated list of language ranges
(RFC 4647 §2.1: ``*`` or 1-8 letters, then ``-`` and 1-8 letters or digits, repeated),
each with an optional weight ``;q=`` (0 to 1, at most three decimals). Matching is RFC 4647
§3.4 *lookup*: the highest-weighted range first (ties keep the header's order); a range
is shortened from the end (``de-CH-1996`` → ``de-CH`` → ``de``) until it names a language
we have; ``q=0`` means "not this one" and excludes the language even if a wildcard would
pick it. Anything that does not parse is skipped on its own (a browser's header is not
ours to reject), and with nothing usable the default language is chosen.

Pure: no I/O, a string in and a language code out.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

MAX_HEADER = 1000
"""Characters of the header looked at: real headers are well below 200."""

MAX_RANGES = 30
"""Ranges looked at (in header order); the rest are ignored."""

_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_WEIGHT = re.compile(r"[qQ]=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


@dataclass(frozen=True)
class LanguageRange:
    tag: str  # lower case, e.g. "de-ch" or "*"
    q: float


def parse_accept_language(header: str | None) -> list[LanguageRange]:
    """The well-formed ranges of ``header`` in header order (malformed items dropped)."""
    if not header:
        return []
    ranges: list[LanguageRange] = []
    for item in header[:MAX_HEADER].split(",")[:MAX_RANGES]:
        parts = [part.strip() for part in item.split(";")]
        tag = parts[0]
        if not _RANGE.fullmatch(tag):
            continue
        q = 1.0
        params = [p for p in parts[1:] if p]
        if params:
            weight = _WEIGHT.fullmatch(params[0].replace(" ", ""))
            if weight is None or len(params) > 1:
                continue
            q = float(weight.group(1))
        ranges.append(LanguageRange(tag.lower(), q))
    return ranges


def negotiate_language(header: str | None, available: Collection[str], default: str) -> str:
    """The language of ``available`` (lower-case primary tags such as ``"zh"``, or longer
    tags such as ``"pt-br"``) the header prefers; ``default`` if none matches."""
    have = {code.lower() for code in available}
    ranges = parse_accept_language(header)
    refused = {r.tag for r in ranges if r.q == 0}
    # sorted() is stable: equal weights keep the header's order
    for candidate in sorted((r for r in ranges if r.q > 0), key=lambda r: -r.q):
        if candidate.tag == "*":  # any language not refused, the default first
            for code in [default, *sorted(have)]:
                if code in have and code not in refused:
                    return code
            continue
        subtags = candidate.tag.split("-")
        while subtags:
            tag = "-".join(subtags)
            if tag in refused:
                break
            if tag in have:
                return tag
            subtags.pop()
            if subtags and len(subtags[-1]) == 1:  # never end on a singleton (RFC 4647)
                subtags.pop()
    return default
