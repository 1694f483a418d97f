"""The Salesforce connection form in Chromium (#17): Disconnect asks first, a test
answers beside its button with the typed input kept, and only the chosen sign-in
method's fields are shown."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from optsync.salesforce.connection import load_connection
from tests.browser.conftest import ADMIN, sign_in

pytestmark = pytest.mark.browser

TAB = "/settings/admin/unsubscribes"


def test_disconnect_asks_first_and_cancel_keeps_the_connection(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
    page.get_by_role("link", name="Disconnect…").click()
    expect(page).to_have_title(re.compile("^Disconnect Salesforce"))
    expect(page.locator(".warning")).to_contain_text("deletes the stored connection")
    expect(page.get_by_role("button", name="Disconnect and delete the secrets")).to_be_visible()
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("heading", name="Salesforce connection")).to_be_visible()
    with live.ctx.db.transaction() as s:
        assert load_connection(s, live.ctx.settings.resolved_secret_key) is not None


def test_a_test_answers_beside_its_button_and_keeps_the_typed_url(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
    page.locator("summary", has_text="Change the connection").click()
    typed = live.emulator.login_url.rstrip("/") + "/"
    page.get_by_label("Login URL").fill(typed)
    page.locator("#client_secret").fill(live.emulator.client_secret)  # a new URL needs it
    page.get_by_role("button", name="Test without saving").click()
    result = page.locator("#connection-result")
    expect(result).to_contain_text("Tested only, not saved.")
    expect(result).to_be_in_viewport()
    expect(page.get_by_label("Login URL")).to_have_value(typed)
    expect(page.get_by_role("button", name="Test without saving")).to_be_visible()


def test_the_form_shows_only_the_chosen_sign_in_methods_fields(live, new_page):
    page = new_page()
    sign_in(page, live, ADMIN, f"{TAB}?tab=integrations")
    page.locator("summary", has_text="Change the connection").click()
    fields = {
        "client_credentials": {"#client_secret"},
        "jwt": {"#username", "#private_key_file"},
        "password": {"#client_secret", "#username", "#sf_password"},
    }
    every = set().union(*fields.values())
    for method, shown in fields.items():
        page.locator(f"#auth-{method}").check()
        for selector in every:
            if selector in shown:
                expect(page.locator(selector)).to_be_visible()
            else:
                expect(page.locator(selector)).to_be_hidden()
