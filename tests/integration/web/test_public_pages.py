"""The hosted page and RFC 8058 one-click POSTs behind ``/u/{token}``."""

from __future__ import annotations

import pytest
from itsdangerous import URLSafeSerializer
from sqlalchemy import select

from optsync.domain.ids import make_id
from optsync.services.links import UnsubscribeLinks
from optsync.services.persons import PersonInput, upsert_person
from optsync.store.models import LedgerEntry, OutboxPush, Person
from tests.integration.web.conftest import BASE_URL, counts, visible

UA = "Mozilla/5.0 (test)"


@pytest.fixture
def ann(ctx) -> int:
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(1, "ann@example.com", make_id("003", 1), "Contact"), ctx.clock()
        )
        return person.id


def path_for(links: UnsubscribeLinks, person_id: int) -> str:
    return links.for_person(person_id).url.removeprefix(BASE_URL)


def test_get_shows_the_address_and_one_button_and_changes_nothing(client, ctx, links, ann):
    before = counts(ctx.db)
    for _ in range(3):  # link scanners fetch more than once
        r = client.get(path_for(links, ann))
        assert r.status_code == 200
    assert "ann@example.com" in visible(r.text)
    assert r.text.count("<button") == 1 and 'method="post"' in r.text
    assert "<script" not in r.text
    assert 'name="viewport"' in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert counts(ctx.db) == before


def test_head_never_unsubscribes_either(client, ctx, links, ann):
    before = counts(ctx.db)
    client.head(path_for(links, ann))
    assert counts(ctx.db) == before


def test_form_post_unsubscribes_with_evidence_and_queues_the_push(client, ctx, links, ann):
    r = client.post(path_for(links, ann), data={"confirm": "yes"}, headers={"User-Agent": UA})
    assert r.status_code == 200
    assert "You are unsubscribed" in r.text and "ann@example.com" in visible(r.text)
    with ctx.db.transaction() as s:
        person = s.get(Person, ann)
        entry = s.scalars(select(LedgerEntry)).one()
        push = s.scalars(select(OutboxPush)).one()
    assert person.unsubscribed and person.unsubscribe_source == "page"
    assert entry.source == "page" and entry.kind == "unsubscribe"
    assert entry.evidence == {"ip": "testclient", "user_agent": UA}
    assert push.person_id == ann and push.state == "pending"


def test_rfc8058_one_click_urlencoded(client, ctx, links, ann):
    r = client.post(
        path_for(links, ann),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": UA},
    )
    assert r.status_code == 200
    with ctx.db.transaction() as s:
        entry = s.scalars(select(LedgerEntry)).one()
    assert entry.source == "one_click"
    assert counts(ctx.db) == (1, 1, 1, 1)


def test_rfc8058_one_click_multipart(client, ctx, links, ann):
    boundary = "----optsyncboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    r = client.post(
        path_for(links, ann),
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 200
    with ctx.db.transaction() as s:
        assert s.scalars(select(LedgerEntry.source)).one() == "one_click"


def test_repeating_is_harmless(client, ctx, links, ann):
    path = path_for(links, ann)
    for data in ({"List-Unsubscribe": "One-Click"}, {"confirm": "yes"}, {}):
        assert client.post(path, data=data).status_code == 200
    assert counts(ctx.db) == (1, 1, 1, 1)
    r = client.get(path)
    assert r.status_code == 200 and "is unsubscribed" in r.text and "<button" not in r.text


def test_unparseable_body_still_unsubscribes(client, ctx, links, ann):
    r = client.post(
        path_for(links, ann),
        content=b"--x\r\nbroken",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 200
    assert counts(ctx.db)[1] == 1


def _flip(token: str, at: int) -> str:
    ch = token[at]
    return token[:at] + ("A" if ch != "A" else "B") + token[at + 1 :]


def tampered(links: UnsubscribeLinks, person_id: int) -> dict[str, str]:
    token = links.token(person_id)
    payload, _, sig = token.partition(".")
    other = UnsubscribeLinks("another-secret-key", BASE_URL)
    plain = URLSafeSerializer("test", salt="optsync.unsubscribe.v1")
    return {
        "flipped_signature": _flip(token, len(token) - 5),
        "flipped_payload": _flip(token, 0),
        "truncated": token[:-3],
        "payload_only": payload,
        "signature_only": sig,
        "other_key": other.token(person_id),
        "raw_secret_not_derived": plain.dumps(person_id),
        "other_person_payload": links.token(person_id + 1).split(".")[0] + "." + sig,
        "garbage": "not-a-token",
        "too_long": "A" * 500,
    }


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_tokens_get_400_and_change_nothing(client, ctx, links, ann, method):
    before = counts(ctx.db)
    for name, token in tampered(links, ann).items():
        r = getattr(client, method)(
            f"/u/{token}",
            **({"data": {"List-Unsubscribe": "One-Click"}} if method == "post" else {}),
        )
        assert r.status_code == 400, name
        assert "not valid" in r.text and "ann@example.com" not in visible(r.text)
        assert r.headers["content-type"].startswith("text/html")
    assert counts(ctx.db) == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_validly_signed_token_of_an_unknown_person_gets_404(client, ctx, links, ann, method):
    before = counts(ctx.db)
    r = getattr(client, method)(path_for(links, ann + 1000))
    assert r.status_code == 404
    assert "not valid" in r.text
    assert counts(ctx.db) == before


def test_the_token_does_not_contain_the_address(links, ann):
    token = links.token(ann)
    assert "ann" not in token.lower() and "example" not in token.lower()


def test_static_css_is_served(client):
    r = client.get("/static/optsync.css")
    assert r.status_code == 200 and "button" in r.text
