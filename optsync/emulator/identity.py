"""Identity and the OAuth extras: the identity URL, userinfo, revoke and introspect.

The token response hands out ``id`` = ``<login url>/id/<orgId>/<userId>``; clients such as
the Salesforce CLI read the username from it (or from ``/services/oauth2/userinfo``)
before doing anything else, so both answer with the key sets of Salesforce's identity
and OpenID Connect documentation (``docs/salesforce-api.md`` §10.5), built from the org's
User and Organization records. Like the token endpoint these calls are not counted
against the API allocation and see no latency or faults.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from optsync.emulator.auth import TokenError, basic_auth
from optsync.emulator.gateway import bearer, sf_json
from optsync.emulator.ids import BadId, canonical
from optsync.emulator.org import Org
from optsync.emulator.schema import ORG_ID, USER, USER_ID


def _bad_token() -> Response:
    # What Salesforce answers on the identity URL for a missing or invalid token.
    return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")


async def _params(request: Request) -> dict[str, str]:
    out = dict(request.query_params)
    if request.method == "POST":
        raw = (await request.body()).decode("utf-8", "replace")
        for k, v in parse_qsl(raw, keep_blank_values=True):
            out.setdefault(k, v)
    return out


def _token(request: Request, params: dict[str, str]) -> str | None:
    return bearer(request) or params.get("oauth_token") or params.get("access_token")


def identity_url(org: Org) -> str:
    return f"{org.login_url}/id/{ORG_ID}/{USER_ID}"


def _urls(org: Org, version: str) -> dict[str, str]:
    inst, org15 = org.instance_url, ORG_ID[:15]
    data = f"{inst}/services/data/v{version}"
    return {
        "enterprise": f"{inst}/services/Soap/c/{version}/{org15}",
        "metadata": f"{inst}/services/Soap/m/{version}/{org15}",
        "partner": f"{inst}/services/Soap/u/{version}/{org15}",
        "rest": f"{data}/",
        "sobjects": f"{data}/sobjects/",
        "search": f"{data}/search/",
        "query": f"{data}/query/",
        "recent": f"{data}/recent/",
        "tooling_soap": f"{inst}/services/Soap/T/{version}/{org15}",
        "tooling_rest": f"{data}/tooling/",
        "profile": f"{inst}/{USER_ID}",
        "feeds": f"{data}/chatter/feeds",
        "groups": f"{data}/chatter/groups",
        "users": f"{data}/chatter/users",
        "feed_items": f"{data}/chatter/feed-items",
        "feed_elements": f"{data}/chatter/feed-elements",
        "custom_domain": inst,
    }


def _user(org: Org) -> dict[str, Any]:
    return org.store.get(USER, USER_ID)[1]


def _photos(org: Org) -> dict[str, str]:
    base = f"{org.instance_url}/img/userprofile"
    return {
        "picture": f"{base}/default_profile_200_v2.png",
        "thumbnail": f"{base}/default_profile_45_v2.png",
    }


def identity_body(org: Org, version: str | None) -> dict[str, Any]:
    """The identity service's JSON (``/id/{orgId}/{userId}?format=json``)."""
    user = _user(org)
    return {
        "id": identity_url(org),
        "asserted_user": True,
        "user_id": USER_ID,
        "organization_id": ORG_ID,
        "username": user["Username"],
        "nick_name": user["Alias"],
        "display_name": user["Name"],
        "email": user["Email"],
        "email_verified": True,
        "first_name": user["FirstName"],
        "last_name": user["LastName"],
        "timezone": user["TimeZoneSidKey"],
        "photos": _photos(org),
        "addr_street": None,
        "addr_city": None,
        "addr_state": None,
        "addr_country": None,
        "addr_zip": None,
        "mobile_phone": None,
        "mobile_phone_verified": False,
        "is_lightning_login_user": False,
        "status": {"created_date": None, "body": None},
        "urls": _urls(org, version or "{version}"),
        "active": bool(user["IsActive"]),
        "user_type": "STANDARD",
        "language": user["LanguageLocaleKey"],
        "locale": user["LocaleSidKey"],
        "utcOffset": 0,
        "last_modified_date": user["LastModifiedDate"],
        "is_app_installed": True,
    }


def userinfo_body(org: Org) -> dict[str, Any]:
    """The OpenID Connect userinfo JSON (``/services/oauth2/userinfo``)."""
    user = _user(org)
    photos = _photos(org)
    return {
        "sub": identity_url(org),
        "user_id": USER_ID,
        "organization_id": ORG_ID,
        "preferred_username": user["Username"],
        "nickname": user["Alias"],
        "name": user["Name"],
        "email": user["Email"],
        "email_verified": True,
        "given_name": user["FirstName"],
        "family_name": user["LastName"],
        "zoneinfo": user["TimeZoneSidKey"],
        "photos": photos,
        "profile": f"{org.instance_url}/{USER_ID}",
        "picture": photos["picture"],
        "address": {},
        "is_salesforce_integration_user": False,
        "urls": _urls(org, "{version}"),
        "active": bool(user["IsActive"]),
        "user_type": "STANDARD",
        "language": user["LanguageLocaleKey"],
        "locale": user["LocaleSidKey"],
        "utcOffset": 0,
        "updated_at": user["LastModifiedDate"],
        "is_app_installed": True,
    }


async def identity(request: Request) -> Response:
    org: Org = request.app.state.org
    params = await _params(request)
    token = _token(request, params)
    if token is None or not org.authority.valid(token):
        return _bad_token()
    try:
        wanted = (
            canonical(request.path_params["org_id"]),
            canonical(request.path_params["user_id"]),
        )
    except BadId:
        wanted = ("", "")
    if wanted != (ORG_ID, USER_ID):
        return Response("Bad_Id", status_code=404, media_type="text/plain")
    fmt = params.get("format", "json").lower()
    if fmt != "json":
        return Response("Unsupported format: only json is served", 406, media_type="text/plain")
    version = params.get("version")
    if version is not None and not version.replace(".", "", 1).isdigit():
        version = None
    return sf_json(identity_body(org, version))


async def userinfo(request: Request) -> Response:
    org: Org = request.app.state.org
    token = _token(request, await _params(request))
    if token is None or not org.authority.valid(token):
        return _bad_token()
    return sf_json(userinfo_body(org))


async def revoke(request: Request) -> Response:
    """``/services/oauth2/revoke?token=…``: 200 with an empty body, as on Salesforce."""
    org: Org = request.app.state.org
    params = await _params(request)
    token = params.get("token", "")
    if org.authority.revoke(token) or hmac.compare_digest(token, org.credentials.refresh_token):
        return Response(status_code=200)
    return sf_json(TokenError("invalid_token", "invalid token").body(), 400)


async def introspect(request: Request) -> Response:
    """RFC 7662 token introspection for the connected app (client authentication required)."""
    org: Org = request.app.state.org
    params = await _params(request)
    try:
        cid, secret = basic_auth(request.headers.get("authorization"))
    except TokenError as exc:
        return sf_json(exc.body(), exc.status)
    if cid is None:
        cid, secret = params.get("client_id"), params.get("client_secret")
    creds = org.credentials
    if (
        cid != creds.client_id
        or secret is None
        or not hmac.compare_digest(secret, creds.client_secret)
    ):
        return sf_json(TokenError("invalid_client", "invalid client credentials").body(), 401)
    token = params.get("token", "")
    session = org.authority.session(token)
    if session is None:
        return sf_json({"active": False})
    issued, expires = session
    return sf_json(
        {
            "active": True,
            "scope": "api",
            "client_id": creds.client_id,
            "username": creds.username,
            "sub": identity_url(org),
            "token_type": "access_token",
            "exp": int(expires),
            "iat": int(issued),
            "nbf": int(issued),
        }
    )


def routes() -> list[Route]:
    return [
        Route("/id/{org_id}/{user_id}", identity, methods=["GET", "POST"]),
        Route("/services/oauth2/userinfo", userinfo, methods=["GET", "POST"]),
        Route("/services/oauth2/revoke", revoke, methods=["GET", "POST"]),
        Route("/services/oauth2/introspect", introspect, methods=["POST"]),
    ]
