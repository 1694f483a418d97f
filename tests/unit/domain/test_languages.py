"""Accept-Language negotiation (RFC 9110 §12.5.4 weights, RFC 4647 lookup): one table."""

from __future__ import annotations

import pytest

from optsync.domain.languages import LanguageRange, negotiate_language, parse_accept_language

SHIPPED = ("en", "de", "fr", "es", "nl", "it", "pt", "zh")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-DE", "de"),
        ("de-CH-1996", "de"),
        ("DE-at", "de"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        ("zh-Hant-TW", "zh"),
        ("pt-BR,pt;q=0.9", "pt"),
        ("fr-CA;q=0.8, nl;q=0.9", "nl"),  # weight beats order
        ("it;q=0.5, es;q=0.5", "it"),  # equal weights keep the header's order
        ("ja, es;q=0.3", "es"),  # a language we lack is skipped
        ("ja, ko", "en"),  # nothing we have: the default
        ("*", "en"),
        ("en;q=0, *", "de"),  # q=0 refuses; the wildcard takes the next one we have
        ("de;q=0, de-CH", "en"),  # de-CH would fall back to the refused de
        ("fr;q=0", "en"),
        ("es;q=1.0", "es"),
        ("es;q=1.5, nl", "nl"),  # a weight above 1 is malformed: that item is dropped
        ("es;q=0.1234, nl;q=0.2", "nl"),  # more than three decimals: malformed
        ("es;level=1, nl;q=0.2", "nl"),  # an unknown parameter: malformed
        ("e$, de;q=0.1", "de"),
        ("x-klingon, fr;q=0.2", "fr"),
        ("de-x-foo", "de"),  # a private-use singleton is dropped with what follows
        ("toolongtag, it;q=0.2", "it"),
        (" nl ; q=0.7 , fr ; q = 0.6 ", "nl"),  # optional whitespace around ; and =
        ("," * 50 + "nl", "en"),  # only the first 30 items are read
    ],
)
def test_negotiation(header, expected):
    assert negotiate_language(header, SHIPPED, "en") == expected


def test_parse_keeps_order_and_lowercases():
    assert parse_accept_language("da, en-GB;q=0.8, en;q=0.7") == [
        LanguageRange("da", 1.0),
        LanguageRange("en-gb", 0.8),
        LanguageRange("en", 0.7),
    ]


def test_a_huge_header_is_cut_not_parsed_whole():
    header = "de;q=0.1," + "x" * 100_000
    assert negotiate_language(header, SHIPPED, "en") == "de"


def test_longer_tags_can_be_shipped():
    assert negotiate_language("pt-BR", ("en", "pt-br", "pt"), "en") == "pt-br"
    assert negotiate_language("pt-PT", ("en", "pt-br", "pt"), "en") == "pt"
