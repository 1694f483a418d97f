"""optsync's own Salesforce requests name their client, so their change events are
recognised (changeOrigin ``…;client=optsync``) and skipped by the live pull."""

from __future__ import annotations

import requests

from optsync.domain.live_pull import OWN_CLIENT
from optsync.salesforce.http import build_session


def test_every_request_of_the_session_carries_the_call_option():
    session = build_session()
    prepared = session.prepare_request(requests.Request("PATCH", "https://x.test/composite"))
    assert prepared.headers["Sforce-Call-Options"] == f"client={OWN_CLIENT}"
