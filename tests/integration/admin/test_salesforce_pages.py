"""The admin pages against the Salesforce emulator: connecting through the form, the
setup checks, and the live check of one record before a re-subscribe."""

from __future__ import annotations

import pytest

from optsync.domain.optout import Source
from optsync.salesforce.connection import load_connection
from optsync.services.optouts import unsubscribe_email
from optsync.services.persons import PersonInput, upsert_person
from tests.integration.admin.conftest import post_form

pytestmark = pytest.mark.emulator

TAB = "/settings/admin/unsubscribes"


def _connect(client, emu, **extra):
    data = {
        "action": "save",
        "auth": "client_credentials",
        "login_url": emu.login_url,
        "client_id": emu.client_id,
        "client_secret": emu.client_secret,
        "api_version": "62.0",
        "ca_bundle": emu.ca_bundle,
        **extra,
    }
    return post_form(client, f"{TAB}/integrations/connection", data)


def test_connect_through_the_form_then_checks_pass_and_secrets_stay_hidden(admin_client, emu, ctx):
    r = _connect(admin_client, emu)
    assert r.status_code == 303, r.text
    page = admin_client.get(r.headers["location"]).text
    assert "Connection saved. Connected to" in page
    assert emu.client_secret not in page
    assert 'id="client_secret" name="client_secret" type="password" value=""' in page
    assert '<span class="badge">stored</span>' in page
    # connection + field on Contact and Lead; the state is said by a sign, not colour only
    assert page.count('state-pushed">✓ Pass') >= 3
    # saving again with the secret left empty keeps the stored one
    assert _connect(admin_client, emu, client_secret="").status_code == 303
    with ctx.db.transaction() as s:
        assert (
            load_connection(s, ctx.settings.resolved_secret_key).client_secret == emu.client_secret
        )
    # a missing field is a failed check with the fix
    post_form(
        admin_client,
        f"{TAB}/integrations/settings",
        {
            "sync_enabled": "on",
            "field": "sales_opt_out",
            "sales_opt_out_field": "Missing__c",
            "schedule": "0 20 * * *",
            "timezone": "UTC",
        },
    )
    page = admin_client.get(f"{TAB}?tab=integrations").text
    assert 'state-failed">✗ Fail' in page and "Missing__c on Contact" in page
    # disconnect forgets it
    r = post_form(admin_client, f"{TAB}/integrations/connection/delete", {})
    assert "Disconnected" in admin_client.get(r.headers["location"]).text
    with ctx.db.transaction() as s:
        assert load_connection(s, ctx.settings.resolved_secret_key) is None


def test_a_bad_connection_is_not_stored_and_names_the_field(admin_client, emu, ctx):
    r = _connect(admin_client, emu, client_id="")
    assert r.status_code == 422
    assert "Not saved" in r.text
    with ctx.db.transaction() as s:
        assert load_connection(s, ctx.settings.resolved_secret_key) is None


def test_remove_page_says_whether_salesforce_still_has_the_field_set(admin_client, emu, ctx):
    ids = emu.seed(contacts=2)["contact_ids"]
    emu.control("PATCH", f"records/{ids[0]}", {"HasOptedOutOfEmail": True})
    _connect(admin_client, emu)
    pids = []
    with ctx.db.transaction() as s:
        for n, sid in enumerate(ids):
            person, _ = upsert_person(
                s, PersonInput(n + 1, f"sf{n}@example.com", sid, "Contact"), ctx.clock()
            )
            unsubscribe_email(s, person.email, source=Source.API, actor="t", now=ctx.clock())
            pids.append(person.id)
    still = admin_client.get(f"{TAB}/persons/{pids[0]}/remove").text
    assert "Salesforce still shows HasOptedOutOfEmail set on this record" in still
    cleared = admin_client.get(f"{TAB}/persons/{pids[1]}/remove").text
    assert "Salesforce shows HasOptedOutOfEmail cleared on this record" in cleared


def test_jwt_with_an_uploaded_key_and_the_password_flow(admin_client, emu, ctx):
    from pathlib import Path

    from tests.integration.admin.conftest import csrf_of

    pem = Path(emu.private_key_file).read_bytes()
    base = {
        "auth": "jwt",
        "login_url": emu.login_url,
        "client_id": emu.client_id,
        "username": emu.username,
        "api_version": "62.0",
        "ca_bundle": emu.ca_bundle,
    }
    r = admin_client.post(
        f"{TAB}/integrations/connection",
        data={**base, "action": "test", "csrf_token": csrf_of(admin_client, "/settings")},
        files={"private_key_file": ("server.key", pem, "application/x-pem-file")},
    )
    # the answer comes on the same page, beside the button, with the form as typed
    assert r.status_code == 200, r.text
    result = r.text[r.text.index('id="connection-result"') :]
    assert result.startswith('id="connection-result" class="result flash flash-ok"')
    assert "Tested only, not saved. Connected to" in result[: result.index("</p>")]
    assert f'id="username" name="username" type="text" value="{emu.username}"' in r.text
    assert 'value="jwt" checked' in r.text and "BEGIN" not in r.text
    with ctx.db.transaction() as s:
        assert load_connection(s, ctx.settings.resolved_secret_key) is None
    r = admin_client.post(
        f"{TAB}/integrations/connection",
        data={**base, "action": "save", "csrf_token": csrf_of(admin_client, "/settings")},
        files={"private_key_file": ("server.key", pem, "application/x-pem-file")},
    )
    page = admin_client.get(r.headers["location"]).text
    assert "Connection saved. Connected to" in page and "BEGIN" not in page
    with ctx.db.transaction() as s:
        assert load_connection(s, ctx.settings.resolved_secret_key).auth == "jwt"

    r = _connect(admin_client, emu, auth="password", username=emu.username, password=emu.password)
    assert "Connection saved. Connected to" in admin_client.get(r.headers["location"]).text
    assert emu.password not in admin_client.get(f"{TAB}?tab=integrations").text

    bad = admin_client.post(
        f"{TAB}/integrations/connection",
        data={**base, "action": "save", "csrf_token": csrf_of(admin_client, "/settings")},
        files={"private_key_file": ("server.key", b"not a key", "text/plain")},
    )
    assert bad.status_code == 422 and "Not saved" in bad.text


def test_no_transaction_is_open_during_salesforce_calls(admin_client, emu, ctx, monkeypatch):
    """Defect 7: the Integrations tab's checks, the connection test and the remove page's
    record check call Salesforce with no database transaction open."""
    from tests.integration.salesforce.txguard import watch

    [contact] = emu.seed(contacts=1)["contact_ids"]
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(1, "tx@example.com", contact, "Contact"), ctx.clock()
        )
        unsubscribe_email(s, person.email, source=Source.API, actor="t", now=ctx.clock())
    with watch(monkeypatch) as w:
        assert _connect(admin_client, emu).status_code == 303
        assert "Pass" in admin_client.get(f"{TAB}?tab=integrations").text
        post_form(admin_client, f"{TAB}/integrations/connection/test", {})
        assert "cleared" in admin_client.get(f"{TAB}/persons/{person.id}/remove").text
    w.assert_none_held()


def test_remove_page_says_hidden_by_field_level_security_not_cleared(admin_client, emu, ctx):
    """One field-state check: a field the integration user cannot see is reported as
    hidden by field-level security, never as "cleared" or a bare call failure."""
    [contact] = emu.seed(contacts=1, opted_out_fraction=1.0)["contact_ids"]
    _connect(admin_client, emu)
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(1, "fls@example.com", contact, "Contact"), ctx.clock()
        )
        unsubscribe_email(s, person.email, source=Source.API, actor="t", now=ctx.clock())
    emu.control("PUT", "fields/Contact/HasOptedOutOfEmail", {"visible": False, "updateable": False})
    page = admin_client.get(f"{TAB}/persons/{person.id}/remove").text
    assert "hidden by field-level security" in page
    assert "cleared on this record" not in page and "still shows" not in page


def test_save_tests_first_and_keeps_the_stored_connection_when_the_test_fails(
    admin_client, emu, ctx
):
    """The form saves like `optsync salesforce connect`: a connection that does not work
    is not stored, and the one stored before stays."""
    assert _connect(admin_client, emu).status_code == 303
    r = _connect(admin_client, emu, client_secret="definitely-wrong-secret")
    assert r.status_code == 422
    assert "Not saved" in r.text and "nothing was stored" in r.text
    assert "definitely-wrong-secret" not in r.text
    with ctx.db.transaction() as s:
        stored = load_connection(s, ctx.settings.resolved_secret_key)
    assert stored is not None and stored.client_secret == emu.client_secret


def test_a_second_integrations_view_within_the_cache_window_calls_salesforce_not_at_all(
    admin_client, emu, clock
):
    assert _connect(admin_client, emu).status_code == 303
    calls = lambda: emu.control("GET", "counters")["total"]  # noqa: E731
    before = calls()
    first = admin_client.get(f"{TAB}?tab=integrations").text
    assert "Checked just now" in first and 'state-pushed">✓ Pass' in first
    after_first = calls()
    assert after_first > before  # the checks asked Salesforce once
    clock.advance(minutes=4)
    second = admin_client.get(f"{TAB}?tab=integrations").text
    assert calls() == after_first  # the cached checks, no API call
    assert "Checked 4 minutes ago" in second and 'state-pushed">✓ Pass' in second
    # Re-check asks again, now
    r = post_form(admin_client, f"{TAB}/integrations/checks", {})
    assert r.status_code == 303
    third = admin_client.get(r.headers["location"]).text
    assert calls() > after_first and "Checked just now" in third
    # past the 15 minutes the page asks again by itself
    settled = calls()
    clock.advance(minutes=16)
    assert "Checked just now" in admin_client.get(f"{TAB}?tab=integrations").text
    assert calls() > settled
