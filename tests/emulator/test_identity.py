"""The identity URL from the token response, userinfo, revoke and introspect."""

from __future__ import annotations

import pytest
import requests

from optsync.emulator import Emulator
from tests.emulator.helpers import Raw, error_code

pytestmark = pytest.mark.emulator


def test_identity_url_from_the_token_answers_with_the_user(emu: Emulator) -> None:
    token = emu.token()
    http = emu.http()
    resp = http.get(
        token["id"],
        params={"format": "json", "version": "59.0"},
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["username"] == emu.username
    assert body["id"] == token["id"]
    assert token["id"].endswith(f"/id/{body['organization_id']}/{body['user_id']}")
    assert body["urls"]["rest"] == f"{emu.instance_url}/services/data/v59.0/"
    assert body["user_type"] == "STANDARD" and body["active"] is True
    # Without a version the URLs keep the literal placeholder, as Salesforce does.
    plain = http.get(token["id"], params={"oauth_token": token["access_token"]}, timeout=30)
    assert plain.status_code == 200
    assert "{version}" in plain.json()["urls"]["rest"]


def test_identity_url_refuses_a_bad_token(emu: Emulator) -> None:
    token = emu.token()
    resp = emu.http().get(token["id"], headers={"Authorization": "Bearer nope"}, timeout=30)
    assert resp.status_code == 403
    assert resp.text == "Bad_OAuth_Token"


def test_identity_points_at_real_user_and_organization_records(emu: Emulator) -> None:
    raw = Raw(emu)
    token = emu.token()
    ident = emu.http().get(token["id"], params={"oauth_token": token["access_token"]}, timeout=30)
    user_id, org_id = ident.json()["user_id"], ident.json()["organization_id"]
    user = raw.get(f"sobjects/User/{user_id}").json()
    assert user["Username"] == emu.username
    org = raw.get(f"sobjects/Organization/{org_id}").json()
    assert org["Id"] == org_id and org["IsSandbox"] is False
    rows = raw.get("query", params={"q": "SELECT Id, Name FROM Organization"}).json()
    assert rows["records"][0]["Id"] == org_id
    created = raw.post("sobjects/Contact", json={"LastName": "Owner"}).json()["id"]
    contact = raw.get(f"sobjects/Contact/{created}").json()
    assert contact["OwnerId"] == user_id and contact["CreatedById"] == user_id
    q = raw.get(
        "query", params={"q": f"SELECT Owner.Username FROM Contact WHERE Id = '{created}'"}
    ).json()
    assert q["records"][0]["Owner"]["Username"] == emu.username


def test_userinfo(emu: Emulator) -> None:
    token = emu.token()
    resp = emu.http().get(
        f"{emu.instance_url}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["preferred_username"] == emu.username
    assert body["sub"] == token["id"]


def test_revoke_ends_the_session(emu: Emulator) -> None:
    token = emu.token()
    raw = Raw(emu, token["access_token"])
    assert raw.get("limits").status_code == 200
    http = emu.http()
    resp = http.post(
        f"{emu.login_url}/services/oauth2/revoke",
        data={"token": token["access_token"]},
        timeout=30,
    )
    assert resp.status_code == 200
    after = raw.get("limits")
    assert after.status_code == 401 and error_code(after) == "INVALID_SESSION_ID"
    again = http.post(
        f"{emu.login_url}/services/oauth2/revoke", data={"token": token["access_token"]}, timeout=30
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_token"


def test_introspect(emu: Emulator) -> None:
    token = emu.token()
    http = emu.http()
    url = f"{emu.login_url}/services/oauth2/introspect"
    ok = http.post(
        url,
        data={"token": token["access_token"], "token_type_hint": "access_token"},
        auth=(emu.client_id, emu.client_secret),
        timeout=30,
    ).json()
    assert ok["active"] is True and ok["username"] == emu.username
    assert ok["exp"] > ok["iat"]
    dead = http.post(
        url, data={"token": "nope"}, auth=(emu.client_id, emu.client_secret), timeout=30
    ).json()
    assert dead == {"active": False}
    unauth: requests.Response = http.post(url, data={"token": token["access_token"]}, timeout=30)
    assert unauth.status_code == 401
