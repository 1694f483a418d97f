"""The activity chart is a pure function from counts to SVG markup."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

from optsync.web.admin.chart import DayCounts, _nice_max, activity_svg, legend, sources_in

NS = {"svg": "http://www.w3.org/2000/svg"}
START = date(2026, 11, 1)


def _days(n: int = 30) -> list[DayCounts]:
    return [DayCounts(START + timedelta(days=i)) for i in range(n)]


def test_empty_days_still_draw_axes_title_and_description():
    svg = ET.fromstring(activity_svg(_days(), title="Activity"))
    assert svg.get("role") == "img"
    assert svg.find("svg:title", NS).text == "Activity"
    assert "0 unsubscribes" in svg.find("svg:desc", NS).text
    assert not svg.findall(".//svg:rect", NS)


def test_bars_stack_by_source_and_pushes_sit_side_by_side():
    days = _days()
    days[2] = DayCounts(days[2].day, {"page": 3, "salesforce": 1}, pushes_sent=4, pushes_failed=1)
    days[5] = DayCounts(days[5].day, {"api": 8})
    svg = ET.fromstring(activity_svg(days))
    rects = svg.findall(".//svg:rect", NS)
    by_class = {r.get("class"): r for r in rects}
    assert set(by_class) == {
        "bar src-page",
        "bar src-salesforce",
        "bar src-api",
        "bar sent",
        "bar failed",
    }
    page, sf = by_class["bar src-page"], by_class["bar src-salesforce"]
    # stacked: salesforce sits on top of page, same x
    assert page.get("x") == sf.get("x")
    assert float(sf.get("y")) + float(sf.get("height")) == float(page.get("y"))
    # the tallest day (8) reaches the axis maximum (8): the whole panel
    assert float(by_class["bar src-api"].get("height")) == 150
    assert by_class["bar sent"].get("x") != by_class["bar failed"].get("x")
    assert by_class["bar failed"].find("svg:title", NS).text == "2026-11-03: 1 pushes failed"
    desc = svg.find("svg:desc", NS).text
    assert "12 unsubscribes" in desc and "busiest day 2026-11-06 with 8" in desc
    assert "4 pushes sent" in desc and "1 failed" in desc


def test_text_is_escaped():
    days = [DayCounts(START, {"<script>": 1})]
    markup = activity_svg(days, title='A & "B"')
    assert "<script>" not in markup and "&lt;script&gt;" in markup
    ET.fromstring(markup)  # well-formed


def test_axis_maximum_is_a_round_number():
    assert [_nice_max(v) for v in (0, 3, 5, 11, 26, 101, 999, 1500)] == [
        4,
        4,
        8,
        12,
        40,
        120,
        1200,
        2000,
    ]


def test_sources_and_legend_follow_a_fixed_order():
    days = [DayCounts(START, {"salesforce": 1, "page": 2, "zzz": 1, "api": 0})]
    assert sources_in(days) == ["page", "salesforce", "zzz"]
    assert legend(days)[0] == ("src-page", "Unsubscribe page")
    assert legend(days)[-2:] == [("sent", "Pushes sent"), ("failed", "Pushes failed")]
