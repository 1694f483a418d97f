"""Reads from the emulator that several bench scripts make once their measuring is done."""

from __future__ import annotations

from datetime import datetime

import requests


def opted_out_stamps(
    session: requests.Session, info: dict[str, str], field: str
) -> dict[str, float]:
    """``SystemModstamp`` (epoch seconds) of every Contact and Lead with ``field`` set, read
    through the REST API (client credentials, query pages followed to the end)."""
    tok = session.post(
        info["login_url"] + "/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        timeout=60,
    ).json()
    headers = {"Authorization": f"Bearer {tok['access_token']}"}
    out: dict[str, float] = {}
    for obj in ("Contact", "Lead"):
        url = (
            f"{tok['instance_url']}/services/data/v62.0/query?q=SELECT+Id,SystemModstamp"
            f"+FROM+{obj}+WHERE+{field}+=+true"
        )
        while url:
            page = session.get(url, headers=headers, timeout=120).json()
            for rec in page["records"]:
                stamp = datetime.strptime(rec["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
                out[rec["Id"]] = stamp.timestamp()
            nxt = page.get("nextRecordsUrl")
            url = tok["instance_url"] + nxt if nxt else ""
    return out


def record_emails(session: requests.Session, info: dict[str, str]) -> dict[str, str]:
    """``Id`` → ``Email`` of every Contact and Lead (the push bench's duplicate-address org
    links its persons by address), through the REST API."""
    tok = session.post(
        info["login_url"] + "/services/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
        timeout=60,
    ).json()
    headers = {"Authorization": f"Bearer {tok['access_token']}"}
    out: dict[str, str] = {}
    for obj in ("Contact", "Lead"):
        url = f"{tok['instance_url']}/services/data/v62.0/query?q=SELECT+Id,Email+FROM+{obj}"
        while url:
            page = session.get(url, headers=headers, timeout=120).json()
            for rec in page["records"]:
                out[rec["Id"]] = rec["Email"]
            nxt = page.get("nextRecordsUrl")
            url = tok["instance_url"] + nxt if nxt else ""
    return out
