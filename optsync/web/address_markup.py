"""An email address as HTML that line-breaks only where an address may: after its "@"
or before one of its dots, never inside a word or at a hyphen (the admin pages' and the
public pages' one rule; ``tests/browser/test_layout.py`` measures it)."""

from __future__ import annotations

from markupsafe import Markup, escape


def address_html(email: str | None) -> Markup:
    """Each piece keeps one line (``.nowrap``), ``<wbr>`` between them."""
    local, at, domain = (email or "").partition("@")
    if not at:
        return Markup('<span class="address">{}</span>').format(email or "")
    first, *rest = local.split(".")
    labels = domain.split(".")
    pieces = [first, *("." + part for part in rest)]
    pieces[-1] += "@"
    pieces += [labels[0], *("." + label for label in labels[1:])]
    # plain joins of escaped pieces: Markup.format per piece costs 4x as much, and this
    # runs on every one-click POST's confirmation
    inner = "<wbr>".join(f'<span class="nowrap">{escape(p)}</span>' for p in pieces)
    return Markup(f'<span class="address">{inner}</span>')  # noqa: S704 (escaped pieces)
