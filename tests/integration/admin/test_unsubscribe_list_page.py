"""The Unsubscribes tab as a list that scales (issue 17): filters in the URL, sorts, page
sizes, keyset pages, search by address or Salesforce id, the CSV export of every matching
row, and strict filters that answer a page naming the bad one (never a 500 or JSON)."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import OutboxPush
from tests.integration.admin.conftest import visible

TAB = "/settings/admin/unsubscribes"
ROW = re.compile(r'href="/settings/admin/unsubscribes/persons/(\d+)"')


def add(ctx, n: int, source=Source.API, obj: str | None = None, email: str | None = None) -> int:
    email = email or f"u{n:03d}@example.com"
    when = ctx.clock() - timedelta(minutes=1000 - n)
    with ctx.db.transaction() as s:
        if obj:
            upsert_person(
                s,
                PersonInput(n, email, make_id("003" if obj == "Contact" else "00Q", n), obj),
                when,
            )
        return unsubscribe_email(s, email, source=source, actor="t", now=when).person.id


def ids(page: str) -> list[int]:
    return [int(m) for m in ROW.findall(page)]


def test_filters_sorts_and_sizes_live_in_the_url(member_client, ctx):
    made = [add(ctx, n, Source.CSV if n % 2 else Source.PAGE) for n in range(1, 61)]
    contact = add(ctx, 70, Source.ADMIN, obj="Contact")
    with ctx.db.transaction() as s:
        s.execute(
            update(OutboxPush)
            .where(OutboxPush.person_id == contact)
            .values(state="failed", last_error_code="INVALID_FIELD", fix="Create the field.")
        )
    page = member_client.get(f"{TAB}?tab=unsubscribes&source=csv&size=25")
    assert page.status_code == 200
    assert "30 unsubscribed matching the filters" in visible(page.text)
    assert ids(page.text) == list(reversed(made[0::2]))[:25]
    # the Next link keeps the filters and the size
    link = html.unescape(re.search(r'href="([^"]+)" rel="next"', page.text).group(1))
    assert "source=csv" in link and "size=25" in link and "cursor=" in link
    second = member_client.get(link)
    assert ids(second.text) == list(reversed(made[0::2]))[25:]
    assert 'rel="next"' not in second.text and "First page" in second.text
    # sort by address, Z to A
    z = member_client.get(f"{TAB}?sort=email_desc&size=100")
    assert ids(z.text)[:2] == [contact, made[-1]]
    oldest = member_client.get(f"{TAB}?sort=oldest&source=page&size=100")
    assert ids(oldest.text) == made[1::2]
    # push state, object, error code, Salesforce id
    failed = member_client.get(f"{TAB}?state=failed")
    assert ids(failed.text) == [contact] and "Create the field." in failed.text
    assert ids(member_client.get(f"{TAB}?object=Contact").text) == [contact]
    assert ids(member_client.get(f"{TAB}?object=Lead").text) == []
    assert ids(member_client.get(f"{TAB}?code=INVALID_FIELD").text) == [contact]
    assert ids(member_client.get(f"{TAB}?q={make_id('003', 70)}").text) == [contact]
    assert ids(member_client.get(f"{TAB}?q=u005").text) == [made[4]]
    # the form shows the filters as given
    form = member_client.get(f"{TAB}?source=csv&state=not_linked&sort=oldest&size=100").text
    assert '<option value="csv" selected>' in form and '<option value="100" selected>' in form
    assert '<option value="not_linked" selected>' in form
    assert '<option value="oldest" selected>' in form


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("source=nowhere", "Source:"),
        ("state=sent", "Push state:"),
        ("object=Opportunity", "Salesforce object:"),
        ("since=2026-02-30", "From:"),
        ("since=2026-11-05&until=2026-11-01", "To:"),
        ("size=30", "Per page:"),
        ("sort=random", "Sort:"),
        ("cursor=forged.cursor", "Page link:"),
        ("code=NOT%20A%20CODE", "Error code:"),
        ("source=csv&source=api", "Source:"),
        ("pulled_by_run=12x", "Pulled by sync run:"),
        ("pushed_by_run=0", "Pushed by sync run:"),
    ],
)
def test_a_bad_filter_gets_the_page_naming_it(member_client, ctx, query, label):
    add(ctx, 1)
    r = member_client.get(f"{TAB}?tab=unsubscribes&{query}")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html")
    text = visible(r.text)
    assert label in text and "Fix the filter above" in text
    assert 'id="filter-error"' in r.text
    if "_by_run" in query:  # an active filter: its chip names the error, with Remove
        assert re.search(r'class="chip"[^>]*aria-describedby="filter-error"', r.text)
    elif "cursor" not in query:  # the filter's own control is marked (a cursor has none)
        assert 'aria-invalid="true" aria-describedby="filter-error"' in r.text
    assert ids(r.text) == []
    export = member_client.get(f"{TAB}/export.csv?{query}")
    assert export.status_code == 400 and label in visible(export.text)


def test_the_export_has_every_matching_row_formula_safe(member_client, app, ctx):
    for n in range(1, 131):
        add(ctx, n, Source.CSV)
    add(ctx, 200, Source.API, email="=hyperlink@example.com")
    r = member_client.get(f"{TAB}/export.csv?source=csv&sort=oldest")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:2] == ["person_id", "email"] and len(rows) == 131  # not one page: all
    assert rows[1][1] == "u001@example.com" and rows[-1][1] == "u130@example.com"
    unsafe = list(csv.reader(io.StringIO(member_client.get(f"{TAB}/export.csv?source=api").text)))
    assert unsafe[1][1] == "'=hyperlink@example.com"
    # the tab's export link carries the filters
    page = member_client.get(f"{TAB}?source=csv&size=25").text
    assert f'href="{TAB}/export.csv?source=csv"' in page and "Export 130 as CSV" in page
    # signed out: sent to sign in, no data
    from tests.integration.admin.conftest import new_client

    with new_client(app) as anonymous:
        r = anonymous.get(f"{TAB}/export.csv")
        assert r.status_code == 303 and "/login" in r.headers["location"]
