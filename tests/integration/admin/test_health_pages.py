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
