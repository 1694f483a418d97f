"""The one follow engine (services/follow.py), with a fake gateway: batching, the bound."""

from __future__ import annotations

from optsync.domain.failures import Classification, Outcome
from optsync.domain.ids import make_id
from optsync.salesforce.errors import SalesforceCallError
from optsync.salesforce.gateway import Target
from optsync.services.follow import MAX_FOLLOWS, Attempt, Failed, follow

CONVERTED = Classification(Outcome.FOLLOW_CONVERSION, "CANNOT_UPDATE_CONVERTED_LEAD", "fix-c")
DELETED = Classification(Outcome.FOLLOW_MERGE, "ENTITY_IS_DELETED", "fix-d")
LEAD, LEAD2 = make_id("00Q", 1), make_id("00Q", 2)
CONTACT, MASTER = make_id("003", 3), make_id("003", 4)


class Gateway:
    def __init__(self, fail: bool = False):
        self.calls: list[tuple[str, list[str]]] = []
        self.fail = fail

    def converted_contacts(self, lead_ids):
        self.calls.append(("converted", list(lead_ids)))
        if self.fail:
            raise SalesforceCallError(
                Classification(Outcome.RETRY, "HTTP_503", "later"), 503, "unavailable"
            )
        return {LEAD: CONTACT, LEAD2: None}

    def merged_masters(self, ids, object):
        self.calls.append((f"merged {object}", list(ids)))
        return {CONTACT: MASTER}


def test_one_batched_lookup_per_kind_and_object_and_retargets():
    gw = Gateway()
    out = follow(
        gw,
        [
            Failed(Attempt(1, Target(LEAD, "Lead")), CONVERTED, "converted"),
            Failed(Attempt(2, Target(LEAD2, "Lead")), CONVERTED, "converted"),
            Failed(Attempt(3, Target(CONTACT, "Contact")), DELETED, "deleted"),
        ],
    )
    assert gw.calls == [("converted", [LEAD, LEAD2]), ("merged Contact", [CONTACT])]
    assert [(a.owner, a.target, a.followed_from, a.follows) for a in out.retargets] == [
        (1, Target(CONTACT, "Contact"), LEAD, 1),
        (3, Target(MASTER, "Contact"), CONTACT, 1),
    ]
    [gone] = out.failures  # converted without a Contact: permanent, with the row's fix
    assert gone.attempt.owner == 2 and gone.classification.outcome is Outcome.PERMANENT
    assert gone.classification.fix == "fix-c"
    assert dict(out.kinds) == {"conversion": 1, "merge": 1}


def test_a_chain_that_keeps_moving_stops_after_max_follows():
    gw = Gateway()
    moved = Attempt(7, Target(CONTACT, "Contact"), followed_from=LEAD, follows=MAX_FOLLOWS)
    out = follow(gw, [Failed(moved, DELETED, "deleted")])
    assert gw.calls == [] and out.retargets == []
    assert out.failures[0].classification.outcome is Outcome.PERMANENT
    assert "kept moving" in out.failures[0].message


def test_a_failed_lookup_call_keeps_the_calls_classification():
    out = follow(Gateway(fail=True), [Failed(Attempt(1, Target(LEAD, "Lead")), CONVERTED, "x")])
    assert out.retargets == []
    assert out.failures[0].classification.code == "HTTP_503"
