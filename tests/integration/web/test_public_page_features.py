"""The public page's sender and logo, reason choices, undo and languages (issue 17)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from optsync.bootstrap import Context
from optsync.domain.ids import make_id
from optsync.domain.optout import Source
from optsync.services.links import UnsubscribeLinks
from optsync.services.optouts import resubscribe_by_id, unsubscribe_by_id
from optsync.services.persons import PersonInput, upsert_person
from optsync.settings import load_settings
from optsync.store.models import LedgerEntry, OutboxPush, Person
from optsync.web.app import create_app
from tests.integration.web.conftest import BASE_URL, counts, visible

UA = "Mozilla/5.0 (undo test)"
UNDO = re.compile(r'name="undo" value="([^"]+)"')


@pytest.fixture
def ann(ctx) -> int:
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(1, "ann@example.com", make_id("003", 1), "Contact"), ctx.clock()
        )
        return person.id


@pytest.fixture
def bob(ctx) -> int:
    with ctx.db.transaction() as s:
        person, _ = upsert_person(
            s, PersonInput(2, "bob@example.com", make_id("003", 2), "Contact"), ctx.clock()
        )
        return person.id


def path_for(links: UnsubscribeLinks, person_id: int) -> str:
    return links.for_person(person_id).url.removeprefix(BASE_URL)


@pytest.fixture
def client_with(ctx: Context, tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """A client of an app whose settings add ``overrides`` (same database and clock)."""
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = load_settings(
            data_dir=tmp_path / "data",
            database_url=ctx.settings.database_url,
            secret_key="test",
            base_url=BASE_URL,
            **overrides,
        )
        client = TestClient(
            create_app(Context(settings=settings, db=ctx.db, clock=ctx.clock)),
            base_url=BASE_URL,
            raise_server_exceptions=False,
        )
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def entries(ctx: Context, person_id: int) -> list[LedgerEntry]:
    with ctx.db.transaction() as s:
        rows = s.scalars(
            select(LedgerEntry).where(LedgerEntry.person_id == person_id).order_by(LedgerEntry.id)
        ).all()
        s.expunge_all()
        return list(rows)


def unsubscribe_on_page(client: TestClient, path: str, **data: str) -> str:
    """POST the page's form; the undo token the confirmation offers."""
    r = client.post(path, data={"confirm": "yes", **data}, headers={"User-Agent": UA})
    assert r.status_code == 200, r.text
    found = UNDO.search(r.text)
    assert found, r.text
    return found.group(1)


# -- languages ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "lang", "heading"),
    [
        (None, "en", "Unsubscribe"),
        ("de-DE,de;q=0.9,en;q=0.8", "de", "Abmelden"),
        ("fr-CA", "fr", "Se désabonner"),
        ("es-419", "es", "Darse de baja"),
        ("nl-BE", "nl", "Afmelden"),
        ("it", "it", "Annulla l\u2019iscrizione"),
        ("pt-BR", "pt", "Cancelar inscrição"),
        ("zh-CN,zh;q=0.9", "zh-Hans", "退订"),
        ("ja, ko;q=0.5", "en", "Unsubscribe"),
    ],
)
def test_the_page_speaks_the_language_accept_language_prefers(
    client, links, ann, header, lang, heading
):
    headers = {"Accept-Language": header} if header else {}
    r = client.get(path_for(links, ann), headers=headers)
    assert r.status_code == 200
    assert f'<html lang="{lang}">' in r.text
    assert f"<h1>{heading}</h1>" in r.text
    assert r.headers["content-language"] == lang
    assert "accept-language" in r.headers["vary"].lower()
    assert "ann@example.com" in visible(r.text)


def test_every_public_page_is_translated(client, ctx, links, ann):
    german = {"Accept-Language": "de"}
    done = client.post(path_for(links, ann), data={"confirm": "yes"}, headers=german)
    assert "Sie sind abgemeldet" in done.text and "Rückgängig machen" in done.text
    token = UNDO.search(done.text).group(1)
    undone = client.post(path_for(links, ann) + "/undo", data={"undo": token}, headers=german)
    assert "Sie sind wieder angemeldet" in undone.text and "Erneut abmelden" in undone.text
    again = client.post(path_for(links, ann) + "/undo", data={"undo": token}, headers=german)
    assert again.status_code == 409 and "nicht mehr rückgängig" in again.text
    bad = client.get("/u/not-a-token", headers={"Accept-Language": "zh"})
    assert bad.status_code == 400 and "此退订链接无效" in bad.text
    assert '<html lang="zh-Hans">' in bad.text


# -- sender and logo -------------------------------------------------------------------


def test_default_page_has_a_neutral_name_and_no_logo(client, links, ann):
    r = client.get(path_for(links, ann))
    assert '<span class="sender">Email preferences</span>' in r.text
    assert "<img" not in r.text
    assert "Stop sales emails to" in r.text


def test_sender_name_and_https_logo_are_shown_and_the_logo_origin_alone_is_allowed(
    client_with, links, ann
):
    client = client_with(
        public_sender_name="Acme  Sales", public_logo="https://cdn.example.com/a/logo.png"
    )
    r = client.get(path_for(links, ann))
    assert '<span class="sender">Acme Sales</span>' in r.text
    assert '<img class="logo" src="https://cdn.example.com/a/logo.png"' in r.text
    assert "Stop sales emails from Acme Sales to" in r.text
    csp = r.headers["content-security-policy"]
    assert "img-src 'self' https://cdn.example.com;" in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp


def test_a_sender_name_is_escaped(client_with, links, ann):
    client = client_with(public_sender_name="<b>Acme</b>")
    r = client.get(path_for(links, ann))
    assert "<b>Acme</b>" not in r.text and "&lt;b&gt;Acme&lt;/b&gt;" in r.text


def test_a_logo_file_under_the_data_dir_is_served_and_nothing_else(client_with, tmp_path):
    data = tmp_path / "data"
    (data / "branding").mkdir(parents=True)
    (data / "branding" / "logo.png").write_bytes(b"\x89PNG fake")
    (data / "secret.key").write_text("do not serve\n")
    client = client_with(public_logo="branding/logo.png")
    r = client.get("/public/logo")
    assert r.status_code == 200 and r.content == b"\x89PNG fake"
    assert r.headers["content-type"] == "image/png"
    for probe in ("/public/logo/../secret.key", "/public/logo?file=secret.key"):
        assert client.get(probe).content != b"do not serve\n"
    # a symlink that leads out of the data dir is not followed
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside")
    (data / "branding" / "link.png").symlink_to(outside)
    assert client_with(public_logo="branding/link.png").get("/public/logo").status_code == 404
    assert client_with().get("/public/logo").status_code == 404


@pytest.mark.parametrize(
    "value",
    [
        "../secret.key.png",
        "/etc/passwd.png",
        "branding/../../x.png",
        "secret.key",
        "http://cdn.example.com/logo.png",
        "https://user:pw@cdn.example.com/logo.png",
        "https://cdn.example.com/logo.png;script-src *",
        "https://cdn.example.com/logo.png' onerror='x",
        "javascript:alert(1)",
        "//cdn.example.com/logo.png",
    ],
)
def test_a_logo_setting_that_could_reach_elsewhere_is_refused(value, tmp_path):
    from optsync.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_settings(data_dir=tmp_path, public_logo=value)
    assert exc.value.field == "OPTSYNC_PUBLIC_LOGO"


# -- reasons ---------------------------------------------------------------------------


def test_reason_choices_are_offered_and_the_answer_is_kept_in_the_evidence(client, ctx, links, ann):
    page = client.get(path_for(links, ann))
    for value in ("too_many", "not_relevant", "never_signed_up", "other"):
        assert f'name="reason" value="{value}"' in page.text
    assert 'name="reason_text"' in page.text and 'maxlength="500"' in page.text
    unsubscribe_on_page(client, path_for(links, ann), reason="never_signed_up")
    (entry,) = entries(ctx, ann)
    assert entry.evidence == {
        "ip": "testclient",
        "user_agent": UA,
        "reason_choice": "never_signed_up",
    }


def test_other_with_free_text_in_any_script(client, ctx, links, ann):
    text = "Zu  viele Mails — 太多了\n bitte"
    unsubscribe_on_page(client, path_for(links, ann), reason="other", reason_text=text)
    (entry,) = entries(ctx, ann)
    assert entry.evidence["reason_choice"] == "other"
    assert entry.evidence["reason_text"] == "Zu viele Mails — 太多了 bitte"


def test_a_multipart_form_carries_the_reason_too(client, ctx, links, ann):
    r = client.post(
        path_for(links, ann),
        files={"reason": (None, "too_many"), "confirm": (None, "yes")},
    )
    assert r.status_code == 200
    assert entries(ctx, ann)[0].evidence["reason_choice"] == "too_many"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": "spam"}, "choose one of the reasons listed"),
        ({"reason": "too_many "}, None),  # surrounding space is trimmed: accepted
        ({"reason": "other", "reason_text": "x" * 501}, "longer than 500 characters"),
    ],
)
def test_a_bad_answer_is_not_kept_but_the_unsubscribe_is(client, ctx, links, ann, data, message):
    r = client.post(path_for(links, ann), data={"confirm": "yes", **data})
    assert r.status_code == 200 and "You are unsubscribed" in r.text
    (entry,) = entries(ctx, ann)
    with ctx.db.transaction() as s:
        assert s.get(Person, ann).unsubscribed
    if message is None:
        assert entry.evidence["reason_choice"] == "too_many"
        assert "Thank you for telling us why" in r.text
    else:
        assert "reason_choice" not in entry.evidence and "reason_text" not in entry.evidence
        assert message in r.text and 'role="alert"' in r.text


def test_one_click_posts_carry_no_reason_and_offer_no_undo(client, ctx, links, ann):
    r = client.post(
        path_for(links, ann), data={"List-Unsubscribe": "One-Click", "reason": "too_many"}
    )
    assert r.status_code == 200 and "undo" not in r.text.lower()
    (entry,) = entries(ctx, ann)
    assert entry.source == "one_click" and "reason_choice" not in entry.evidence


def test_no_question_when_no_reasons_are_configured(client_with, ctx, links, ann):
    client = client_with(public_reasons="")
    r = client.get(path_for(links, ann))
    assert "<fieldset" not in r.text and 'name="reason"' not in r.text
    client.post(path_for(links, ann), data={"confirm": "yes", "reason": "too_many"})
    assert "reason_choice" not in entries(ctx, ann)[0].evidence


def test_a_reduced_list_validates_against_itself(client_with, ctx, links, ann):
    client = client_with(public_reasons="too_many, not_relevant")
    r = client.get(path_for(links, ann))
    assert 'value="never_signed_up"' not in r.text and 'name="reason_text"' not in r.text
    r = client.post(path_for(links, ann), data={"confirm": "yes", "reason": "never_signed_up"})
    assert "choose one of the reasons listed" in r.text
    assert "reason_choice" not in entries(ctx, ann)[0].evidence


def test_an_unknown_reason_setting_names_the_field_and_the_choices(tmp_path):
    from optsync.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_settings(data_dir=tmp_path, public_reasons="too_many,spam")
    assert exc.value.field == "OPTSYNC_PUBLIC_REASONS"
    assert "'spam'" in str(exc.value) and "never_signed_up" in str(exc.value)


# -- undo ------------------------------------------------------------------------------


def test_undo_in_time_resubscribes_through_the_one_write_path(client, ctx, links, ann, clock):
    path = path_for(links, ann)
    token = unsubscribe_on_page(client, path)
    clock.advance(minutes=9, seconds=59)
    r = client.post(path + "/undo", data={"undo": token}, headers={"User-Agent": UA})
    assert r.status_code == 200, r.text
    assert "You are subscribed again" in r.text and f'href="{path}"' in r.text
    assert "customer records" not in r.text  # the push had not been sent
    first, second = entries(ctx, ann)
    assert (second.kind, second.source, second.actor) == ("resubscribe", "page", f"person:{ann}")
    assert "undid their own unsubscribe" in second.reason and "10 minutes" in second.reason
    assert second.evidence == {"ip": "testclient", "user_agent": UA, "undoes_ledger_id": first.id}
    with ctx.db.transaction() as s:
        person = s.get(Person, ann)
        push = s.scalars(select(OutboxPush).where(OutboxPush.person_id == ann)).one()
    assert not person.unsubscribed
    assert push.state == "cancelled"  # no worker sets the field for someone re-subscribed


def test_undo_at_exactly_ten_minutes_is_still_in_time(client, ctx, links, ann, clock):
    token = unsubscribe_on_page(client, path_for(links, ann))
    clock.advance(minutes=10)
    assert client.post(path_for(links, ann) + "/undo", data={"undo": token}).status_code == 200


def test_undo_too_late_refuses_and_changes_nothing(client, ctx, links, ann, clock):
    token = unsubscribe_on_page(client, path_for(links, ann))
    clock.advance(minutes=10, seconds=1)
    before = counts(ctx.db)
    r = client.post(path_for(links, ann) + "/undo", data={"undo": token})
    assert r.status_code == 409
    assert "Too late to undo" in r.text and "ann@example.com" in visible(r.text)
    assert counts(ctx.db) == before
    with ctx.db.transaction() as s:
        assert s.get(Person, ann).unsubscribed


def test_undo_after_a_later_change_refuses_and_changes_nothing(client, ctx, links, ann):
    token = unsubscribe_on_page(client, path_for(links, ann))
    with ctx.db.transaction() as s:  # an admin re-subscribes, then the API unsubscribes
        resubscribe_by_id(
            s, ann, source=Source.ADMIN, actor="user:x", now=ctx.clock(), reason="asked"
        )
    with ctx.db.transaction() as s:
        unsubscribe_by_id(s, ann, source=Source.API, actor="token:t", now=ctx.clock())
    before = counts(ctx.db)
    r = client.post(path_for(links, ann) + "/undo", data={"undo": token})
    assert r.status_code == 409 and "no longer be undone" in r.text
    assert counts(ctx.db) == before
    assert [e.source for e in entries(ctx, ann)] == ["page", "admin", "api"]


def test_an_undo_works_once(client, ctx, links, ann):
    token = unsubscribe_on_page(client, path_for(links, ann))
    assert client.post(path_for(links, ann) + "/undo", data={"undo": token}).status_code == 200
    before = counts(ctx.db)
    assert client.post(path_for(links, ann) + "/undo", data={"undo": token}).status_code == 409
    assert counts(ctx.db) == before


def _flip(token: str, at: int) -> str:
    return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]


def test_forged_truncated_or_foreign_undo_tokens_change_nothing(client, ctx, links, ann, bob):
    token = unsubscribe_on_page(client, path_for(links, ann))
    bob_token = unsubscribe_on_page(client, path_for(links, bob))
    other_key = UnsubscribeLinks("another key", BASE_URL)
    ledger_id = entries(ctx, ann)[0].id
    before = counts(ctx.db)
    for bad in (
        "",
        token[:-3],
        _flip(token, len(token) - 5),
        _flip(token, 2),
        bob_token,  # bob's undo on ann's link
        other_key.undo_token(ann, ledger_id),
        links.token(ann),  # an unsubscribe link token is not an undo token
        "x" * 5000,
    ):
        r = client.post(path_for(links, ann) + "/undo", data={"undo": bad})
        assert r.status_code == 400, bad
        assert "This undo button is not valid" in r.text
    # a forged link in the URL: 400 before the undo token is even read
    r = client.post("/u/" + _flip(path_for(links, ann)[3:], 4) + "/undo", data={"undo": token})
    assert r.status_code == 400
    assert counts(ctx.db) == before


def test_get_never_unsubscribes_nor_undoes(client, ctx, links, ann):
    before = counts(ctx.db)
    for path in (path_for(links, ann), path_for(links, ann) + "/undo"):
        client.get(path)
        client.head(path)
    assert counts(ctx.db) == before
    token = unsubscribe_on_page(client, path_for(links, ann))
    after = counts(ctx.db)
    client.get(path_for(links, ann) + f"/undo?undo={token}")
    assert counts(ctx.db) == after


def test_undo_after_the_push_was_sent_says_salesforce_keeps_it_and_leaves_it(
    client, ctx, links, ann, clock
):
    token = unsubscribe_on_page(client, path_for(links, ann))
    clock.advance(seconds=1)
    with ctx.db.transaction() as s:  # the worker delivered the push
        push = s.scalars(select(OutboxPush).where(OutboxPush.person_id == ann)).one()
        push.state, push.sent_at, push.settled_at = "sent", clock(), clock()
    clock.advance(minutes=2)
    r = client.post(path_for(links, ann) + "/undo", data={"undo": token})
    assert r.status_code == 200
    assert "had already reached the sender&#39;s customer records" in r.text
    with ctx.db.transaction() as s:
        assert not s.get(Person, ann).unsubscribed
        # as an admin's re-subscribe: nothing is queued to clear the field in Salesforce
        assert [p.state for p in s.scalars(select(OutboxPush))] == ["sent"]


def test_the_undo_of_an_unknown_person_is_a_404(client, ctx, links):
    ghost = 999_999
    r = client.post(path_for(links, ghost) + "/undo", data={"undo": links.undo_token(ghost, 1)})
    assert r.status_code == 404


def test_a_second_click_and_the_link_opened_again_offer_the_same_undo(
    client, ctx, links, ann, clock
):
    path = path_for(links, ann)
    unsubscribe_on_page(client, path)
    again = unsubscribe_on_page(client, path)  # a double click: no change, same Undo
    clock.advance(minutes=5)
    before = counts(ctx.db)
    page = client.get(path)
    assert counts(ctx.db) == before  # showing the Undo changes nothing
    assert "is unsubscribed" in page.text
    token = UNDO.search(page.text).group(1)
    assert links.undo_of(token, ann) == links.undo_of(again, ann) == entries(ctx, ann)[0].id
    assert client.post(path + "/undo", data={"undo": token}).status_code == 200
    assert len(entries(ctx, ann)) == 2


def test_no_undo_is_offered_after_the_window_or_for_a_one_click(
    client, ctx, links, ann, bob, clock
):
    unsubscribe_on_page(client, path_for(links, ann))
    clock.advance(minutes=10, seconds=1)
    assert 'name="undo"' not in client.get(path_for(links, ann)).text
    client.post(path_for(links, bob), data={"List-Unsubscribe": "One-Click"})
    repeat = client.post(path_for(links, bob), data={"confirm": "yes"})
    assert 'name="undo"' not in repeat.text
    assert 'name="undo"' not in client.get(path_for(links, bob)).text


def _race_undo_and_admin(ctx: Context, person_id: int, entry_id: int) -> list[object]:
    import threading

    from optsync.services.optouts import undo_unsubscribe
    from optsync.services.transactions import in_transaction

    start = threading.Barrier(2)
    outcomes: list[object] = []

    def undo() -> None:
        start.wait()
        outcomes.append(
            in_transaction(
                ctx.db, lambda s: undo_unsubscribe(s, person_id, entry_id, now=ctx.clock())
            ).refusal
        )

    def admin() -> None:
        start.wait()
        outcomes.append(
            in_transaction(
                ctx.db,
                lambda s: resubscribe_by_id(
                    s, person_id, source=Source.ADMIN, actor="user:x", now=ctx.clock(), reason="r"
                ),
            ).changed
        )

    threads = [threading.Thread(target=undo), threading.Thread(target=admin)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return outcomes


def test_an_undo_racing_an_admin_re_subscribe_records_one_re_subscribe(ctx, links, ann, client):
    """The person is locked before the latest entry is read: whichever commits first
    re-subscribes, the other changes nothing (the undo refuses, the admin's is a no-op)."""
    for _round in range(5):
        unsubscribe_on_page(client, path_for(links, ann))
        outcomes = _race_undo_and_admin(ctx, ann, entries(ctx, ann)[-1].id)
        assert len(outcomes) == 2, outcomes
        refusal = next(o for o in outcomes if not isinstance(o, bool))
        admin_changed = next(o for o in outcomes if isinstance(o, bool))
        # exactly one of them re-subscribed, and the undo knows whether it was the one
        assert (refusal is None) != admin_changed, outcomes
        kinds = [e.kind for e in entries(ctx, ann)]
        assert kinds[-2:] == ["unsubscribe", "resubscribe"], kinds  # exactly one re-subscribe
        assert all(a != b for a, b in itertools.pairwise(kinds)), kinds
