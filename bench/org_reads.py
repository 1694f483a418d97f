"""Reads from the emulator that several bench scripts make once their measuring is done."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import requests


def _records(session: requests.Session, info: dict[str, str], soql: str) -> Iterator[Any]:
    """Every record ``soql`` selects, through the REST API (client credentials, query
    pages followed to the end)."""
    tok = session.post(
        info["login_url"] + "/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        timeout=60,
    ).json()
    headers = {"Authorization": f"Bearer {tok['access_token']}"}
    url = f"{tok['instance_url']}/services/data/v62.0/query?q={soql.replace(' ', '+')}"
    while url:
        page = session.get(url, headers=headers, timeout=120).json()
        yield from page["records"]
        nxt = page.get("nextRecordsUrl")
        url = tok["instance_url"] + nxt if nxt else ""


def opted_out_stamps(
    session: requests.Session, info: dict[str, str], field: str
) -> dict[str, float]:
    """``SystemModstamp`` (epoch seconds) of every Contact and Lead with ``field`` set."""
    out: dict[str, float] = {}
    for obj in ("Contact", "Lead"):
        soql = f"SELECT Id,SystemModstamp FROM {obj} WHERE {field} = true"
        for rec in _records(session, info, soql):
            stamp = datetime.strptime(rec["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
            out[rec["Id"]] = stamp.timestamp()
    return out


def record_emails(session: requests.Session, info: dict[str, str]) -> dict[str, str]:
    """``Id`` → ``Email`` of every Contact and Lead (the push bench's duplicate-address org
    links its persons by address)."""
    out: dict[str, str] = {}
    for obj in ("Contact", "Lead"):
        for rec in _records(session, info, f"SELECT Id,Email FROM {obj}"):
            out[rec["Id"]] = rec["Email"]
    return out
