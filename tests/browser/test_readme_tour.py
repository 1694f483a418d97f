"""README's tour matches what `optsync demo` shows: the steps of tests/browser/tour.py
(which `make tour` also runs to regenerate docs/screenshots), against a real demo."""

from __future__ import annotations

import pytest

from tests.browser.tour import running_demo, take_tour

pytestmark = pytest.mark.browser


def test_the_readme_tour_works_against_the_demo(browser):
    with running_demo(persons=200) as demo:
        figures = take_tour(demo, browser, screenshots=None)
    assert figures["push_s"] < 10
