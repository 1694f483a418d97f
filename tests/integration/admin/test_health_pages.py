"""The sync-health banner on both tabs, the Notifications section, a dry run's records
and the person page's pushes and "Unsubscribe again" (over TestClient, both databases)."""

from __future__ import annotations

from datetime import timedelta

from optsync.store.models import SyncRun
from tests.integration.admin.conftest import visible

TAB = "/settings/admin/unsubscribes"


def add_failed_run(ctx, error="Setup check failed: the field is missing.") -> int:
    now = ctx.clock()
    with ctx.db.transaction() as s:
        run = SyncRun(
            trigger="schedule",
            dry_run=False,
            status="failed",
            error=error,
            field="HasOptedOutOfEmail",
            started_at=now - timedelta(minutes=5),
            finished_at=now - timedelta(minutes=4),
            report={},
        )
        s.add(run)
        s.flush()
        return run.id


def test_the_banner_is_on_both_tabs_and_says_what_fails(admin_client, ctx):
    for path in (TAB, f"{TAB}?tab=integrations"):
        text = visible(admin_client.get(path).text)
        assert "Sync health: all good" in text, path
        assert "Last successful run" in text and "None yet" in text
    run_id = add_failed_run(ctx)
    for path in (TAB, f"{TAB}?tab=integrations"):
        page = admin_client.get(path).text
        text = visible(page)
        assert "Sync health: 1 thing needs attention" in text, path
        assert f"The last sync run (#{run_id}) failed: Setup check failed" in text
        assert f'href="{TAB}/runs/{run_id}"' in page


def test_members_see_the_banner_too(member_client, ctx):
    add_failed_run(ctx)
    assert "needs attention" in visible(member_client.get(TAB).text)


NOTIFY = f"{TAB}/integrations/notifications"
INTEGRATIONS = f"{TAB}?tab=integrations"


def test_notifications_are_saved_the_secret_shown_once_and_a_test_answers_beside(admin_client, ctx):
    from tests.integration.admin.conftest import post_form
    from tests.integration.health.servers import WebhookServer

    page = admin_client.get(INTEGRATIONS).text
    assert 'id="notifications"' in page and "Send a test" in page
    with WebhookServer() as hook:
        r = post_form(
            admin_client,
            NOTIFY,
            {"webhook_enabled": "on", "webhook_url": hook.url, "smtp_port": "587",
             "webhook_timeout_s": "5", "webhook_retries": "0", "stuck_after_min": "15",
             "smtp_security": "starttls"},
            page=INTEGRATIONS,
        )  # fmt: skip
        assert r.status_code == 200
        text = visible(r.text)
        assert "Webhook signing secret, shown once" in text
        secret = r.text.split('id="webhook-secret">')[1].split("<")[0]
        assert secret.startswith("whsec_")
        again = admin_client.get(INTEGRATIONS).text
        assert secret not in again and "signing secret stored" in visible(again)
        r = post_form(admin_client, f"{NOTIFY}/test", {}, page=INTEGRATIONS)
        assert r.status_code == 200 and "Webhook: test sent." in visible(r.text)
        assert 'id="notify-test-result"' in r.text
        assert len(hook.hook.requests) == 1
    r = post_form(admin_client, f"{NOTIFY}/test", {}, page=INTEGRATIONS)
    assert "webhook: " in visible(r.text) and "cannot connect" in visible(r.text)


def test_a_bad_notification_setting_is_shown_beside_its_field_and_kept(admin_client):
    from tests.integration.admin.conftest import post_form

    r = post_form(
        admin_client,
        NOTIFY,
        {"webhook_url": "http://hooks.example.com/x", "smtp_port": "587",
         "webhook_timeout_s": "5", "webhook_retries": "0", "stuck_after_min": "15",
         "smtp_security": "starttls"},
        page=INTEGRATIONS,
    )  # fmt: skip
    assert r.status_code == 422
    assert 'id="webhook_url-error"' in r.text and "Use https://" in r.text
    assert 'value="http://hooks.example.com/x"' in r.text  # the input is kept


def test_members_cannot_change_notifications_and_csrf_is_required(member_client, admin_client):
    from tests.integration.admin.conftest import post_form

    r = post_form(member_client, NOTIFY, {"webhook_url": "https://x.example.com"}, page=TAB)
    assert r.status_code == 403
    r = admin_client.post(NOTIFY, data={"webhook_url": "https://x.example.com"})
    assert r.status_code in (400, 403)


def _wait_run(client, run_id: int) -> str:
    import time

    for _ in range(300):
        page = client.get(f"{TAB}/runs/{run_id}").text
        if "refreshes every" not in page:
            return page
        time.sleep(0.05)
    raise AssertionError("the run did not end")


def test_a_dry_run_page_lists_its_records_offers_csv_and_runs_for_real(admin_client, emu, ctx):
    from optsync.services.persons import PersonInput, upsert_person
    from tests.integration.admin.conftest import post_form
    from tests.integration.admin.test_salesforce_pages import _connect

    [contact, other] = emu.seed(contacts=2, opted_out_fraction=1.0)["contact_ids"]
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(1, "ann.pull@example.com", contact, "Contact"), ctx.clock())
        # an address a spreadsheet would run as a formula: the CSV carries it as text
        upsert_person(s, PersonInput(2, "=eve@example.com", other, "Contact"), ctx.clock())
    assert _connect(admin_client, emu).status_code == 303
    r = post_form(admin_client, f"{TAB}/runs", {"mode": "dry_run"}, page=INTEGRATIONS)
    dry_id = int(r.headers["location"].rsplit("/", 1)[1])
    page = _wait_run(admin_client, dry_id)
    text = visible(page)
    assert f"What dry run #{dry_id} would do" in text
    assert "ann.pull@example.com" in text and contact in text
    assert "Run it for real" in text
    import re

    form = re.compile(
        rf'action="{TAB}/runs/{dry_id}/real"[^>]*>\s*'
        r'<input type="hidden" name="csrf_token" value="[^"]+"'
    )
    assert form.search(page), "the Run it for real form carries the CSRF token"
    assert form.search(admin_client.get(INTEGRATIONS).text)
    csv_text = admin_client.get(f"{TAB}/runs/{dry_id}/preview.csv").text
    lines = csv_text.splitlines()
    assert lines[0] == "direction,person_id,email,salesforce_id,object,field"
    assert sorted(lines[1:]) == [
        f"pull,1,ann.pull@example.com,{contact},Contact,HasOptedOutOfEmail",
        f"pull,2,'=eve@example.com,{other},Contact,HasOptedOutOfEmail",
    ]
    r = post_form(admin_client, f"{TAB}/runs/{dry_id}/real", {}, page=f"{TAB}/runs/{dry_id}")
    real_id = int(r.headers["location"].rsplit("/", 1)[1])
    assert real_id != dry_id
    text = visible(_wait_run(admin_client, real_id))
    assert f"Sync run #{real_id}" in text and "Pulled from Salesforce" in text
    # a real run is not run "for real" again
    r = post_form(admin_client, f"{TAB}/runs/{real_id}/real", {}, page=f"{TAB}/runs/{real_id}")
    assert r.headers["location"].endswith(f"/runs/{real_id}")


def test_a_dry_run_page_lists_every_record_of_an_address_as_its_count_says(admin_client, emu, ctx):
    """An unsubscribed address with a Contact and a duplicate Lead: the page's "would
    set … on 2 records", its list and "All as CSV" all name both records."""
    from optsync.domain.optout import Source
    from optsync.services.optouts import unsubscribe_email
    from optsync.services.persons import PersonInput, upsert_person
    from tests.integration.admin.conftest import post_form
    from tests.integration.admin.test_salesforce_pages import _connect

    seed = emu.seed(contacts=1, leads=1)
    [contact], [lead] = seed["contact_ids"], seed["lead_ids"]
    emu.control("PATCH", f"records/{lead}", {"Email": "Dup@Example.com"})
    emu.control("PATCH", f"records/{contact}", {"Email": "dup@example.com"})
    now = ctx.clock()
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(1, "dup@example.com", contact, "Contact"), now)
        unsubscribe_email(
            s, "dup@example.com", source=Source.ADMIN, actor="admin@example.com", now=now
        )
    assert _connect(admin_client, emu).status_code == 303
    r = post_form(admin_client, f"{TAB}/runs", {"mode": "dry_run"}, page=INTEGRATIONS)
    dry_id = int(r.headers["location"].rsplit("/", 1)[1])
    text = " ".join(visible(_wait_run(admin_client, dry_id)).split())
    assert "on 2 Salesforce records" in text
    assert "Would push (set in Salesforce): 2" in text
    assert contact in text and lead in text
    lines = admin_client.get(f"{TAB}/runs/{dry_id}/preview.csv").text.splitlines()
    pushes = sorted(line.split(",")[3] for line in lines[1:] if line.startswith("push,"))
    assert pushes == sorted([contact, lead])


def test_the_person_page_lists_every_push_with_the_run_that_made_it_and_the_evidence(
    admin_client, ctx
):
    from optsync.domain.optout import Source
    from optsync.services.optouts import unsubscribe_email
    from optsync.services.persons import PersonInput, upsert_person
    from optsync.store.models import OutboxPush

    now = ctx.clock()
    run_id = add_failed_run(ctx)
    with ctx.db.transaction() as s:
        upsert_person(s, PersonInput(1, "ann@example.com", "003000000000001AAA", "Contact"), now)
        pid = unsubscribe_email(
            s,
            "ann@example.com",
            source=Source.ADMIN,
            actor="user:admin@example.com",
            now=now,
            evidence={"ip": "203.0.113.9", "user_agent": "Tester/1.0"},
        ).person.id
        s.add(
            OutboxPush(
                person_id=pid,
                state="sent",
                attempts=1,
                next_attempt_at=now,
                claimed_by=f"sync run #{run_id}",
                field="HasOptedOutOfEmail",
                target_id="00Q000000000009AAA",
                created_at=now,
                sent_at=now,
            )
        )
        s.flush()
        s.execute(
            OutboxPush.__table__.update()
            .where(OutboxPush.person_id == pid, OutboxPush.claimed_by.is_(None))
            .values(state="sent", sent_at=now)
        )
    page = admin_client.get(f"{TAB}/persons/{pid}").text
    text = visible(page)
    assert "Pushes to Salesforce" in text
    assert f'href="{TAB}/runs/{run_id}">Sync run #{run_id}</a>' in page
    assert "00Q000000000009AAA" in text
    assert page.count('data-label="Sent by"') == 2
    assert "IP address" in text and "203.0.113.9" in text and "Tester/1.0" in text


def test_unsubscribe_again_after_a_re_subscribe(admin_client, member_client, ctx):
    from sqlalchemy import select

    from optsync.domain.optout import Source
    from optsync.services.optouts import resubscribe_email, unsubscribe_email
    from optsync.store.models import LedgerEntry
    from tests.integration.admin.conftest import post_form

    now = ctx.clock()
    with ctx.db.transaction() as s:
        pid = unsubscribe_email(s, "bo@example.com", source=Source.API, actor="api", now=now)
        pid = pid.person.id
    person = f"{TAB}/persons/{pid}"
    assert "Unsubscribe again" not in visible(admin_client.get(person).text)
    with ctx.db.transaction() as s:
        resubscribe_email(
            s, "bo@example.com", source=Source.ADMIN, actor="user:a@example.com", now=now,
            reason="asked by phone",
        )  # fmt: skip
    assert "Unsubscribe again…" in visible(admin_client.get(person).text)
    assert "Unsubscribe again" not in visible(member_client.get(person).text)
    confirm = admin_client.get(f"{person}/unsubscribe")
    assert confirm.status_code == 200 and "Unsubscribe this person again?" in confirm.text
    assert post_form(member_client, f"{person}/unsubscribe", {}, page=TAB).status_code == 403
    assert admin_client.post(f"{person}/unsubscribe").status_code in (400, 403)  # no CSRF
    r = post_form(admin_client, f"{person}/unsubscribe", {}, page=f"{person}/unsubscribe")
    assert r.status_code == 303
    text = visible(admin_client.get(person).text)
    assert "Unsubscribed again; the push to Salesforce is queued." in text
    with ctx.db.transaction() as s:
        last = s.scalars(select(LedgerEntry).order_by(LedgerEntry.id.desc())).first()
        assert (last.kind, last.source, last.actor) == (
            "unsubscribe",
            "admin",
            "user:admin@example.com",
        )
