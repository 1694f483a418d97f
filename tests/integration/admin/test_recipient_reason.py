"""The person page shows the answer a recipient gave on the public page (issue 17)."""

from __future__ import annotations

from optsync.domain.ids import make_id
from optsync.services.links import UnsubscribeLinks
from optsync.services.persons import PersonInput, upsert_person
from tests.integration.admin.conftest import visible

TAB = "/settings/admin/unsubscribes"


def test_the_ledger_shows_the_recipients_answer(ctx, admin_client):
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(1, "ann@example.com", make_id("003", 1), "Contact"), ctx.clock()
        )
    link = UnsubscribeLinks.from_settings(ctx.settings).for_person(person.id).url
    path = link.split("://", 1)[1].split("/", 1)[1]
    r = admin_client.post(
        "/" + path,
        data={"confirm": "yes", "reason": "other", "reason_text": "Too many <b>follow-ups</b>"},
    )
    assert r.status_code == 200
    page = admin_client.get(f"{TAB}/persons/{person.id}")
    assert page.status_code == 200
    answer = "Recipient\u2019s answer: Another reason: “Too many <b>follow-ups</b>”"
    assert answer in visible(page.text)
    assert "<b>follow-ups</b>" not in page.text  # escaped
