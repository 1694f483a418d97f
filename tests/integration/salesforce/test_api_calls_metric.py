"""``optsync_salesforce_api_calls_total{purpose}`` counts every REST request the gateway
makes, labelled by the gateway's profile (page, job, push)."""

from __future__ import annotations

import pytest

from optsync.emulator import Emulator
from optsync.metrics import API_CALLS
from optsync.salesforce.gateway import SalesforceGateway

from .conftest import config_for, counters

pytestmark = pytest.mark.emulator


def _value(purpose: str) -> float:
    return API_CALLS.labels(purpose=purpose)._value.get()


@pytest.mark.parametrize("profile", ["page", "job", "push"])
def test_every_api_call_is_counted_under_the_profile(emu: Emulator, profile: str) -> None:
    from optsync.salesforce.gateway import build_gateway

    before = {p: _value(p) for p in ("page", "job", "push")}
    emu.seed(contacts=3)
    with build_gateway(config_for(emu), profile) as gw:
        gw.limits()
        gw.check_field("HasOptedOutOfEmail")
        list(gw.iter_people("Contact"))
        made = gw.api_calls
    assert made == 4 == counters(emu)["total"]
    after = {p: _value(p) for p in ("page", "job", "push")}
    assert after[profile] - before[profile] == made
    assert all(after[p] == before[p] for p in after if p != profile)


def test_a_gateway_built_directly_counts_as_push(emu: Emulator) -> None:
    before = _value("push")
    with SalesforceGateway(config_for(emu)) as gw:
        gw.limits()
    assert _value("push") - before == 1
