"""The public pages' texts in every language we ship, chosen from ``Accept-Language``.

The texts are data, one JSON catalogue per language in ``web/locales/`` (``en.json`` is
the reference: every catalogue has exactly its keys and, in each text, exactly its
``{placeholders}``; ``tests/unit/web/test_i18n.py`` holds them to that). Two keys are
not texts: ``_lang`` is the page's ``<html lang>`` (``zh-Hans``: we ship Simplified
Chinese) and ``_name`` the language's own name.

Catalogues are read once per process. A text is HTML-escaped, then its placeholders are
filled with escaped values (or with ``Markup`` the template built, such as the address in
``<strong>``), so no catalogue or address can inject markup.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from optsync.domain.languages import negotiate_language

LOCALES = Path(__file__).parent / "locales"
DEFAULT = "en"
LANGUAGES = ("en", "de", "fr", "es", "nl", "it", "pt", "zh")
"""The languages we ship, by primary language subtag (the catalogue's file name)."""


@dataclass(frozen=True)
class Catalogue:
    code: str
    texts: dict[str, str]

    @property
    def lang(self) -> str:
        """For ``<html lang>``."""
        return self.texts["_lang"]

    def __call__(self, key: str, **values: Any) -> Markup:
        """The text of ``key``, escaped, with ``values`` filled in (escaped too)."""
        filled = str(escape(self.texts[key])).format(**{k: escape(v) for k, v in values.items()})
        return Markup(filled)  # noqa: S704 (the text and every value are escaped)


def _read(code: str) -> dict[str, str]:
    data = json.loads((LOCALES / f"{code}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise ValueError(f"{code}.json: a catalogue is one object of texts")
    return data


@cache
def catalogue(code: str) -> Catalogue:
    """The catalogue of ``code`` (one of :data:`LANGUAGES`), read on first use."""
    if code not in LANGUAGES:
        raise KeyError(code)
    return Catalogue(code, _read(code))


@lru_cache(maxsize=512)
def for_header(accept_language: str | None) -> Catalogue:
    """The catalogue ``Accept-Language`` prefers; English when none of ours matches.
    Cached: browsers send few distinct headers, and this runs on every one-click POST."""
    return catalogue(negotiate_language(accept_language, LANGUAGES, DEFAULT))
