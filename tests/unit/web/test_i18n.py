"""The public pages' catalogues: complete, consistent, safe."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from optsync.settings import REASON_CHOICES
from optsync.web import i18n

LOCALES = Path(i18n.__file__).parent / "locales"
TEMPLATES = Path(i18n.__file__).parent / "templates"
PUBLIC = (
    "public_base.html",
    "_undo_form.html",
    "unsubscribe.html",
    "unsubscribed.html",
    "resubscribed.html",
    "undo_refused.html",
    "link_error.html",
    "unavailable.html",
)


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_we_ship_the_languages_the_issue_names_and_only_those():
    assert sorted(p.stem for p in LOCALES.glob("*.json")) == sorted(i18n.LANGUAGES)
    assert set(i18n.LANGUAGES) >= {"en", "de", "fr", "es", "nl", "it", "pt", "zh"}


@pytest.mark.parametrize("code", i18n.LANGUAGES)
def test_each_catalogue_has_every_text_with_the_same_placeholders(code):
    english = json.loads((LOCALES / "en.json").read_text(encoding="utf-8"))
    texts = json.loads((LOCALES / f"{code}.json").read_text(encoding="utf-8"))
    assert set(texts) == set(english)
    for key, text in texts.items():
        assert text.strip() == text and text, (code, key)
        assert placeholders(text) == placeholders(english[key]), (code, key)
    if code != "en":  # translated, not copied
        same = [k for k in english if not k.startswith("_") and texts[k] == english[k]]
        assert not same, (code, same)


def test_every_key_the_templates_use_exists_and_every_reason_has_a_text():
    english = json.loads((LOCALES / "en.json").read_text(encoding="utf-8"))
    used: set[str] = set()
    for name in PUBLIC:
        # every quoted key (``t('a' if sender else 'b')`` names two); built ones below
        used |= set(
            re.findall(r"'([a-z_]+\.[a-z_]*[a-z]|skip|brand)'", (TEMPLATES / name).read_text())
        )
    used |= {f"reason.{r}" for r in REASON_CHOICES}
    used |= {f"undo_{k}.{p}" for k in ("late", "changed", "bad") for p in ("title", "body")}
    used |= {f"done.reason_error_{p}" for p in ("choice", "length")}
    missing = used - set(english)
    assert not missing
    assert not {k for k in english if not k.startswith("_")} - used  # no text unused


def test_a_text_is_escaped_and_so_are_its_values():
    t = i18n.catalogue("en")
    html = t("done.body", email="<script>x</script>@example.com", sender="")
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_html_lang_of_chinese_names_the_script():
    assert i18n.catalogue("zh").lang == "zh-Hans"
    assert i18n.for_header("zh-TW").code == "zh"
    assert i18n.for_header("sv").code == "en"
