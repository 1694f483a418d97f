"""Admin pages answer malformed addresses with HTML pages: an id beyond 64 bits (which a
member can type) is a 404 page, never a 500; a bad list filter is a 400 page, not JSON."""

from __future__ import annotations

import pytest

from tests.integration.admin.conftest import post_form

BASE = "/settings/admin/unsubscribes"
HUGE = str(2**64)
HUGER = "9" * 40


def _is_page(r, status):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html"), r.headers["content-type"]
    assert "<h1>" in r.text and '"error"' not in r.text


def _is_tab_with_error(r):
    """The Unsubscribes tab itself (400), its error above the filters, never JSON."""
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>Unsubscribes</h1>" in r.text and 'id="filter-error"' in r.text


@pytest.mark.parametrize("pid", [HUGE, HUGER, "-1", "0", "abc", "1.0"])
def test_a_person_id_out_of_range_is_a_404_page_for_a_member(member_client, admin_client, pid):
    _is_page(member_client.get(f"{BASE}/persons/{pid}"), 404)
    _is_page(admin_client.get(f"{BASE}/persons/{pid}/remove"), 404)
    # a member is refused the admin-only page before its address is looked at
    assert member_client.get(f"{BASE}/persons/{pid}/remove").status_code == 403


@pytest.mark.parametrize("pid", [HUGE, "abc"])
def test_posts_to_an_id_out_of_range_are_404_pages(admin_client, pid):
    for action in ("remove", "retry"):
        r = post_form(admin_client, f"{BASE}/persons/{pid}/{action}", {"reason": "x"})
        _is_page(r, 404)


@pytest.mark.parametrize("rid", [HUGE, HUGER, "abc"])
def test_a_run_id_out_of_range_is_a_404_page(admin_client, rid):
    _is_page(admin_client.get(f"{BASE}/runs/{rid}"), 404)


@pytest.mark.parametrize("page", ["abc", "1.5", HUGER, "2"])
def test_a_page_number_is_a_400_page_saying_the_list_pages_by_links(member_client, page):
    """The list pages with cursor links (issue 17); an old ``?page=N`` link says so."""
    r = member_client.get(f"{BASE}?page={page}")
    _is_tab_with_error(r)
    assert "Page: This list has no page numbers" in r.text


@pytest.mark.parametrize("query", ["nonsense=1", "Source=csv", "sort=email&limit=5"])
def test_an_unknown_list_parameter_is_a_400_page_naming_it(member_client, query):
    r = member_client.get(f"{BASE}?{query}")
    _is_tab_with_error(r)
    assert "not a filter of this list" in r.text.lower()


def test_the_api_keeps_its_json_errors(app, admin_headers):
    from fastapi.testclient import TestClient

    from tests.integration.conftest import BASE_URL

    with TestClient(app, base_url=BASE_URL) as c:
        r = c.delete(f"/api/v1/unsubscribes/{HUGE}?reason=x", headers=admin_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "person_id"
