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
