"""The sync planner: a table of hand-picked cases, then the rules as properties."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optsync.domain.ids import make_id
from optsync.domain.planner import (
    LocalPerson,
    LocalUnsubscribe,
    PushAction,
    SyncPlan,
    apply_plan,
    id_key,
    plan_sync,
)

C1, C2, C3 = (make_id("003", n) for n in (1, 2, 3))
L1, L2 = (make_id("00Q", n) for n in (1, 2))
STRANGER = make_id("003", 999)


def P(pid: int, sf: str | None, unsub: bool, resub: bool = False) -> LocalPerson:
    return LocalPerson(pid, sf, unsub, resub)


CASES: list[tuple[str, list[LocalPerson], list[str], SyncPlan]] = [
    ("nothing anywhere", [], [], SyncPlan()),
    (
        "local unsubscribe not yet in Salesforce is pushed",
        [P(1, C1, True)],
        [],
        SyncPlan(push=(PushAction(1, C1),)),
    ),
    (
        "already opted out on both sides: nothing to do",
        [P(1, C1, True)],
        [C1],
        SyncPlan(),
    ),
    (
        "Salesforce opt-out of a known, subscribed person is pulled",
        [P(1, L1, False)],
        [L1],
        SyncPlan(unsubscribe_locally=(LocalUnsubscribe(1, L1),)),
    ),
    (
        "re-subscribed here while Salesforce still has the field: opted out again",
        [P(1, C1, False, resub=True)],
        [C1],
        SyncPlan(unsubscribe_locally=(LocalUnsubscribe(1, C1),), reopted_out=(1,)),
    ),
    (
        "re-subscribed here and cleared in Salesforce: stays subscribed",
        [P(1, C1, False, resub=True)],
        [],
        SyncPlan(),
    ),
    (
        "field cleared in Salesforce but still unsubscribed here: pushed again",
        [P(1, C1, True)],
        [],
        SyncPlan(push=(PushAction(1, C1),)),
    ),
    (
        "unsubscribed without a Salesforce id: reported as not linked",
        [P(2, None, True), P(1, None, False)],
        [],
        SyncPlan(not_linked=(2,)),
    ),
    (
        "remote opt-outs of unknown records are only counted",
        [P(1, C1, False)],
        [STRANGER, make_id("00Q", 998)],
        SyncPlan(unknown_remote=2),
    ),
    (
        "ids compare case-insensitively (lower-cased remote, upper-cased local)",
        [P(1, C1.upper(), False), P(2, L1, True)],
        [C1.lower(), L1.lower()],
        SyncPlan(unsubscribe_locally=(LocalUnsubscribe(1, C1.upper()),)),
    ),
    (
        "a remote id listed twice in different case counts once",
        [],
        [STRANGER, STRANGER.lower()],
        SyncPlan(unknown_remote=1),
    ),
    (
        "a shared record is pushed once, by the lowest person id, and opts out its sibling",
        [P(5, C2, True), P(3, C2, True), P(4, C2, False, resub=True)],
        [],
        SyncPlan(
            push=(PushAction(3, C2),),
            unsubscribe_locally=(LocalUnsubscribe(4, C2),),
            reopted_out=(4,),
        ),
    ),
    (
        "mixed run, output sorted",
        [
            P(9, C3, True),
            P(7, C1, False),
            P(8, L2, True),
            P(6, L1, False, resub=True),
            P(5, None, True),
            P(4, C2, False),
        ],
        [L1, C1, STRANGER],
        SyncPlan(
            push=(PushAction(8, L2), PushAction(9, C3)),
            unsubscribe_locally=(LocalUnsubscribe(6, L1), LocalUnsubscribe(7, C1)),
            not_linked=(5,),
            reopted_out=(6,),
            unknown_remote=1,
        ),
    ),
]


@pytest.mark.parametrize(
    ("local", "remote", "expected"),
    [pytest.param(local, remote, plan, id=name) for name, local, remote, plan in CASES],
)
def test_plan_table(local: list[LocalPerson], remote: list[str], expected: SyncPlan) -> None:
    assert plan_sync(local, remote) == expected


def test_plan_is_noop_property() -> None:
    assert SyncPlan().is_noop
    assert SyncPlan(not_linked=(1,), unknown_remote=3).is_noop
    assert not SyncPlan(push=(PushAction(1, C1),)).is_noop


@pytest.mark.parametrize(
    ("local", "remote", "message"),
    [
        ([P(1, C1, True), P(1, C2, False)], [], "appears twice"),
        ([P(1, C1[:15], True)], [], "person 1"),
        ([], [C1[:15]], "remote opted-out record"),
        ([P(1, C1[:17] + "!", True)], [], "18-character"),
    ],
)
def test_rejects_ambiguous_input(local: list[LocalPerson], remote: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_sync(local, remote)


def test_apply_plan_only_sets_and_resets_the_resubscribed_flag() -> None:
    local = [P(1, C1, True), P(2, L1, False, resub=True), P(3, None, False, resub=True)]
    plan = plan_sync(local, [L1])
    new_local, new_remote = apply_plan(local, [L1], plan)
    assert new_local == (P(1, C1, True), P(2, L1, True), P(3, None, False))
    assert new_remote == frozenset({L1, C1})


def test_apply_plan_does_not_duplicate_an_id_in_another_case() -> None:
    plan = SyncPlan(push=(PushAction(1, C1),))
    _, new_remote = apply_plan([P(1, C1, True)], [C1.lower()], plan)
    assert new_remote == frozenset({C1.lower()})


# -- properties ------------------------------------------------------------------------

# A small pool, so that records are often shared and remote/local overlap a lot.
POOL = [make_id(prefix, n) for prefix in ("003", "00Q") for n in range(6)]


def _recase(sf_id: str, how: int) -> str:
    return (sf_id, sf_id.upper(), sf_id.lower())[how]


sf_ids = st.builds(_recase, st.sampled_from(POOL), st.integers(0, 2))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[LocalPerson], list[str]]:
    rows = draw(
        st.lists(
            st.tuples(st.one_of(st.none(), sf_ids), st.booleans(), st.booleans()),
            max_size=12,
        )
    )
    ids = draw(st.permutations(range(1, len(rows) + 1)))
    local = [
        LocalPerson(pid, sf, unsub, resub and not unsub)
        for pid, (sf, unsub, resub) in zip(ids, rows, strict=True)
    ]
    remote = draw(st.lists(sf_ids, max_size=12))
    return local, remote


def _keys_linked(local: tuple[LocalPerson, ...] | list[LocalPerson]) -> set[str]:
    return {id_key(p.salesforce_id) for p in local if p.salesforce_id}


def _unsubscribed_linked(local: tuple[LocalPerson, ...] | list[LocalPerson]) -> set[str]:
    return {id_key(p.salesforce_id) for p in local if p.salesforce_id and p.unsubscribed}


@given(worlds())
def test_after_applying_both_sides_hold_the_union(
    world: tuple[list[LocalPerson], list[str]],
) -> None:
    local, remote = world
    known = _keys_linked(local)
    union = _unsubscribed_linked(local) | ({id_key(r) for r in remote} & known)

    new_local, new_remote = apply_plan(local, remote, plan_sync(local, remote))

    assert _unsubscribed_linked(new_local) == union
    assert {id_key(r) for r in new_remote} & known == union
    # every person linked to an opted-out record is unsubscribed, not just one of them
    for p in new_local:
        if p.salesforce_id and id_key(p.salesforce_id) in union:
            assert p.unsubscribed


@given(worlds())
def test_nothing_is_ever_resubscribed(world: tuple[list[LocalPerson], list[str]]) -> None:
    local, remote = world
    plan = plan_sync(local, remote)
    new_local, new_remote = apply_plan(local, remote, plan)

    after = {p.person_id: p for p in new_local}
    assert all(after[p.person_id].unsubscribed for p in local if p.unsubscribed)
    assert set(remote) <= new_remote
    # the plan itself never targets someone already opted out on the side it changes
    already = {p.person_id for p in local if p.unsubscribed}
    assert not {u.person_id for u in plan.unsubscribe_locally} & already
    assert not {id_key(a.salesforce_id) for a in plan.push} & {id_key(r) for r in remote}


@given(worlds())
def test_planning_again_after_applying_changes_nothing(
    world: tuple[list[LocalPerson], list[str]],
) -> None:
    local, remote = world
    new_local, new_remote = apply_plan(local, remote, plan_sync(local, remote))
    again = plan_sync(new_local, new_remote)
    assert again.push == ()
    assert again.unsubscribe_locally == ()
    assert again.reopted_out == ()


@given(worlds(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_sorted(
    world: tuple[list[LocalPerson], list[str]], rnd: random.Random
) -> None:
    local, remote = world
    plan = plan_sync(local, remote)
    shuffled_local, shuffled_remote = list(local), list(remote)
    rnd.shuffle(shuffled_local)
    rnd.shuffle(shuffled_remote)
    assert plan_sync(shuffled_local, shuffled_remote) == plan
    assert list(plan.push) == sorted(plan.push)
    assert list(plan.unsubscribe_locally) == sorted(plan.unsubscribe_locally)
    assert list(plan.not_linked) == sorted(plan.not_linked)
    assert list(plan.reopted_out) == sorted(plan.reopted_out)


@given(worlds())
def test_report_fields_match_their_definitions(
    world: tuple[list[LocalPerson], list[str]],
) -> None:
    local, remote = world
    plan = plan_sync(local, remote)
    by_id = {p.person_id: p for p in local}
    assert set(plan.not_linked) == {
        p.person_id for p in local if p.unsubscribed and p.salesforce_id is None
    }
    assert set(plan.reopted_out) == {
        u.person_id
        for u in plan.unsubscribe_locally
        if by_id[u.person_id].resubscribed_since_last_sync
    }
    assert plan.unknown_remote == len({id_key(r) for r in remote} - _keys_linked(local))
    # one push per record
    pushed = [id_key(a.salesforce_id) for a in plan.push]
    assert len(pushed) == len(set(pushed))
