"""The Integrations tab's linking-rule select and suppress-unknown checkbox."""

from __future__ import annotations

from optsync.services.sync_settings import get_settings
from tests.integration.admin.conftest import post_form

TAB = "/settings/admin/unsubscribes"
VALID = {
    "sync_enabled": "on",
    "field": "email_opt_out",
    "sales_opt_out_field": "Sales_Opt_Out__c",
    "schedule": "0 20 * * *",
    "timezone": "America/Los_Angeles",
}


def test_integrations_tab_shows_and_saves_them(admin_client, ctx):
    page = admin_client.get(f"{TAB}?tab=integrations").text
    assert 'name="link_rule"' in page and 'name="suppress_unknown"' in page
    assert "Contact first, then Lead" in page
    r = post_form(
        admin_client,
        f"{TAB}/integrations/settings",
        {**VALID, "link_rule": "lead_only", "suppress_unknown_shown": "1"},
    )
    assert r.status_code == 303, r.text
    with ctx.db.transaction() as s:
        saved = get_settings(s)
    # the checkbox was on the form and left unticked: off
    assert saved.link_rule == "lead_only" and saved.suppress_unknown is False
    r = post_form(
        admin_client,
        f"{TAB}/integrations/settings",
        {**VALID, "link_rule": "bogus", "suppress_unknown_shown": "1", "suppress_unknown": "on"},
    )
    assert r.status_code == 422 and 'id="link-rule-error"' in r.text
    # a form without the controls (an older page) keeps the stored values
    assert post_form(admin_client, f"{TAB}/integrations/settings", VALID).status_code == 303
    with ctx.db.transaction() as s:
        assert get_settings(s).link_rule == "lead_only"
