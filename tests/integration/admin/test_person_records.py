"""The person page and the API list the address's Salesforce records and what each push
set or failed to set (issue 16)."""

from __future__ import annotations

from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.optouts import unsubscribe_email
from optsync.store.models import OutboxPush
from optsync.store.outbox import RecordOutcome, record_outcomes
from optsync.store.records import MirroredRecord, upsert_records
from optsync.web.admin.remote import record_url

TAB = "/settings/admin/unsubscribes"
CONTACT = make_id("003", 1)
LEAD = make_id("00Q", 2)
ACCOUNT = make_id("001", 3)


def _person_with_records(ctx):
    with ctx.db.transaction() as s:
        pid = unsubscribe_email(
            s, "ann@example.com", source=Source.API, actor="t", now=ctx.clock()
        ).person.id
        upsert_records(
            s,
            [
                MirroredRecord(CONTACT, "Contact", "Ann@example.com", email_opt_out=True),
                MirroredRecord(LEAD, "Lead", "ann@example.com", email_opt_out=False),
                MirroredRecord(ACCOUNT, "Account", "ann@example.com", email_opt_out=True),
            ],
            ctx.clock(),
        )
        push = s.query(OutboxPush).one()
        push.state = "failed"
        push.last_error_code = "INVALID_FIELD_FOR_INSERT_UPDATE"
        push.fix = "Give the integration user edit access to the field."
        record_outcomes(
            s,
            [
                RecordOutcome(push.id, CONTACT, "Contact", "sent"),
                RecordOutcome(push.id, ACCOUNT, "Account", "sent"),
                RecordOutcome(
                    push.id,
                    LEAD,
                    "Lead",
                    "failed",
                    code="INVALID_FIELD_FOR_INSERT_UPDATE",
                    message="Unable to create/update fields",
                    fix="Give the integration user edit access to the field.",
                ),
            ],
            ctx.clock(),
        )
    return pid


def test_person_page_lists_records_and_what_the_push_reached(admin_client, ctx):
    pid = _person_with_records(ctx)
    page = admin_client.get(f"{TAB}/persons/{pid}").text
    assert "Salesforce records with this address" in page
    for rid in (CONTACT, LEAD, ACCOUNT):
        assert rid in page
    assert "Person Account" in page and "Not set" in page
    # the pushes table lists each record the push reached
    pushes = page[page.index('id="pushes-h"') : page.index('id="ledger-h"')]
    for rid in (CONTACT, LEAD, ACCOUNT):
        assert rid in pushes
    assert "INVALID_FIELD_FOR_INSERT_UPDATE" in page and "Unable to create/update fields" in page


def test_a_person_without_records_is_not_in_salesforce(admin_client, ctx):
    with ctx.db.transaction() as s:
        pid = unsubscribe_email(
            s, "zed@example.com", source=Source.API, actor="t", now=ctx.clock()
        ).person.id
        s.query(OutboxPush).one().state = "not_linked"
    page = admin_client.get(f"{TAB}/persons/{pid}").text
    assert "Not in Salesforce" in page and "Not linked" not in page
    listing = admin_client.get(f"{TAB}?q=zed").text
    assert "Not in Salesforce" in listing


def test_lightning_urls():
    base = "https://acme.my.salesforce.com"
    assert record_url(base, "Account", ACCOUNT) == f"{base}/lightning/r/Account/{ACCOUNT}/view"
    assert record_url(None, "Contact", CONTACT) is None
