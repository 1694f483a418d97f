"""Notifications of failed runs and stuck pushes, delivered to a real SMTP server
(aiosmtpd, in-process) and a real local webhook receiver that verifies the signature, on
SQLite and PostgreSQL: each failure announced once, failures of delivery retried later."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from optsync.errors import UsageError
from optsync.services.notifications.channels import send_webhook
from optsync.services.notifications.dispatch import Channels, notify_tick, send_test
from optsync.services.notifications.settings import (
    get_notification_settings,
    update_notification_settings,
)
from optsync.store.models import (
    AdminAuditEntry,
    NotificationEvent,
    NotificationSettings,
    OutboxPush,
)
from tests.integration.health.servers import SmtpServer, WebhookServer, free_port
from tests.integration.health.test_sync_health import add_run, linked_unsubscribe

KEY = "test"  # the ctx fixture's secret key
NO_SLEEP = Channels(webhook=functools.partial(send_webhook, sleep=lambda s: None))


def save(ctx, password=None, **changes):
    kwargs = {} if password is None else {"smtp_password": password}
    with ctx.db.transaction() as s:
        saved = update_notification_settings(
            s, changes, secret_key=KEY, actor="user:admin@example.com", now=ctx.clock(), **kwargs
        )
    ctx.clock.advance(minutes=5)  # what fails from now on is news
    return saved


def tick(ctx):
    return notify_tick(
        ctx.db, secret_key=KEY, base_url="https://optsync.test", now=ctx.clock(), senders=NO_SLEEP
    )


def email_settings(port: int) -> dict:
    return {
        "email_enabled": True,
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_security": "none",
        "smtp_username": "optsync",
        "email_from": "optsync@example.com",
        "email_to": "ops@example.com, oncall@example.com",
    }


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    stamp = headers["x-optsync-timestamp"]
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers["x-optsync-signature"], "sha256=" + mac)


def test_a_failed_run_is_announced_once_by_email_and_webhook(ctx, clock):
    with SmtpServer(users={"optsync": "s3cret pass"}) as smtp, WebhookServer() as hook:
        saved = save(
            ctx,
            password="s3cret pass",
            **email_settings(smtp.port),
            webhook_enabled=True,
            webhook_url=hook.url,
        )
        secret = saved.new_webhook_secret
        assert secret and secret.startswith("whsec_")
        with ctx.db.transaction() as s:
            run_id = add_run(
                s, clock(), status="failed", error="Setup check failed: no field.", minutes_ago=2
            )
        result = tick(ctx)
        assert result.sent == [f"run_failed:{run_id}"]
        [mail] = smtp.box.messages
        assert mail["Subject"] == f"optsync: sync run #{run_id} failed"
        assert "Setup check failed: no field." in mail.get_payload()
        assert (
            f"https://optsync.test/settings/admin/unsubscribes/runs/{run_id}" in mail.get_payload()
        )
        assert smtp.box.envelopes[0][1] == ["ops@example.com", "oncall@example.com"]
        [(headers, body)] = hook.hook.requests
        assert verify(secret, headers, body)
        assert not verify(secret + "x", headers, body)
        data = json.loads(body)
        assert (data["event"], data["run_id"]) == ("run_failed", run_id)
        assert headers["x-optsync-event"] == "run_failed"
        for _ in range(3):  # later ticks: nothing new, nothing resent
            clock.advance(seconds=60)
            assert tick(ctx).sent == []
        assert len(smtp.box.messages) == 1 and len(hook.hook.requests) == 1


def test_stuck_pushes_are_announced_once_then_resolved(ctx, clock):
    with WebhookServer() as hook:
        saved = save(ctx, webhook_enabled=True, webhook_url=hook.url, stuck_after_min=15)
        with ctx.db.transaction() as s:
            linked_unsubscribe(s, clock() - timedelta(minutes=20), 1, "ann@example.com")
            linked_unsubscribe(s, clock() - timedelta(minutes=1), 2, "bob@example.com")
        assert len(tick(ctx).sent) == 1
        clock.advance(minutes=5)
        assert tick(ctx).sent == []  # the same spell: not again
        [(headers, body)] = hook.hook.requests
        data = json.loads(body)
        assert verify(saved.new_webhook_secret, headers, body)
        assert (data["event"], data["count"], data["stuck_after_min"]) == ("pushes_stuck", 1, 15)
        with ctx.db.transaction() as s:
            s.execute(update(OutboxPush).values(state="sent", sent_at=clock()))
        result = tick(ctx)
        assert len(result.sent) == 1 and result.sent[0].endswith(":resolved")
        assert json.loads(hook.hook.requests[-1][1])["event"] == "resolved"


def test_an_smtp_server_that_is_down_gets_a_clear_error_and_a_retry_later(ctx, clock):
    port = free_port()
    save(ctx, **email_settings(port))
    with ctx.db.transaction() as s:
        run_id = add_run(s, clock(), status="failed", error="boom", minutes_ago=2)
    result = tick(ctx)
    assert result.retrying == [f"run_failed:{run_id}"]
    with ctx.db.transaction() as s:
        event = s.scalars(select(NotificationEvent)).one()
        assert event.state == "pending" and event.attempts == 1
        assert f"email: cannot reach 127.0.0.1:{port}" in event.last_error
    with SmtpServer(port=port) as smtp:
        assert tick(ctx).sent == []  # not due yet: backoff
        clock.advance(seconds=31)
        assert tick(ctx).sent == [f"run_failed:{run_id}"]
        assert len(smtp.box.messages) == 1


def test_a_webhook_answering_500_is_retried_within_the_send_and_later(ctx, clock):
    with WebhookServer() as hook:
        save(ctx, webhook_enabled=True, webhook_url=hook.url, webhook_retries=1)
        hook.hook.statuses = [500, 503, 200]
        with ctx.db.transaction() as s:
            add_run(s, clock(), status="failed", error="boom", minutes_ago=2)
        result = tick(ctx)
        assert len(result.retrying) == 1 and len(hook.hook.requests) == 2
        with ctx.db.transaction() as s:
            event = s.scalars(select(NotificationEvent)).one()
            assert "answered HTTP 503 after 2 attempt(s)" in event.last_error
        clock.advance(seconds=31)
        assert len(tick(ctx).sent) == 1 and len(hook.hook.requests) == 3


def test_send_a_test_reports_success_and_the_error(ctx, clock):
    assert send_test(ctx.db, secret_key=KEY, base_url="https://x", now=clock()) == {
        "notifications": "any channel: not set up yet; fill in and save the settings first."
    }
    with SmtpServer() as smtp:
        save(ctx, **{**email_settings(smtp.port), "smtp_username": None, "email_enabled": False})
        out = send_test(ctx.db, secret_key=KEY, base_url="https://x", now=clock())
        assert out == {"email": "sent"}
        assert smtp.box.messages[0]["Subject"] == "optsync: test notification"
    out = send_test(ctx.db, secret_key=KEY, base_url="https://x", now=clock(), channel="email")
    assert out["email"].startswith("email: cannot reach 127.0.0.1:")


def test_nothing_is_announced_while_off_or_from_before_it_was_switched_on(ctx, clock):
    with ctx.db.transaction() as s:
        add_run(s, clock(), status="failed", error="old", minutes_ago=30)
    assert tick(ctx).created == []  # off
    clock.advance(minutes=1)
    with WebhookServer() as hook:
        save(ctx, webhook_enabled=True, webhook_url=hook.url)
        assert tick(ctx).created == []  # the failure predates switching on
        assert hook.hook.requests == []


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"webhook_url": "http://hooks.example.com/x"}, "webhook_url", "use https://"),
        ({"webhook_url": "https://u:p@hooks.example.com/x"}, "webhook_url", "credentials"),
        ({"webhook_url": "ftp://hooks.example.com"}, "webhook_url", "https:// URL"),
        ({"smtp_port": 0}, "smtp_port", "1 to 65535"),
        ({"smtp_security": "ssl"}, "smtp_security", "none, starttls, tls"),
        ({"email_to": "not-an-address"}, "email_to", "email_to:"),
        ({"email_enabled": True}, "smtp_host", "needed"),
        ({"stuck_after_min": 0}, "stuck_after_min", "1 to 1440"),
        ({"smtp_host": "bad host!"}, "smtp_host", "host name"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(ctx, changes, field, words):
    with pytest.raises(UsageError) as err:
        save(ctx, **changes)
    assert err.value.field == field and words in err.value.message


def test_a_password_is_never_sent_in_clear_to_another_machine(ctx):
    with pytest.raises(UsageError) as err:
        save(ctx, password="pw", smtp_host="smtp.example.com", smtp_security="none")
    assert err.value.field == "smtp_security"


def test_secrets_are_sealed_never_shown_and_the_change_is_audited(ctx):
    saved = save(ctx, password="hunter2-password", webhook_url="https://hooks.example.com/x")
    assert saved.new_webhook_secret
    again = save(ctx, stuck_after_min=30)
    assert again.new_webhook_secret is None  # shown once only
    with ctx.db.transaction() as s:
        row = s.get(NotificationSettings, 1)
        assert (
            b"hunter2" not in row.secrets and saved.new_webhook_secret.encode() not in row.secrets
        )
        view = get_notification_settings(s, KEY)
        audits = [a.detail for a in s.scalars(select(AdminAuditEntry))]
    shown = json.dumps(view.as_dict())
    assert "hunter2" not in shown and saved.new_webhook_secret not in shown
    assert view.smtp_password_stored and view.webhook_secret_stored
    assert audits[0] == "changed: webhook_url, smtp_password, webhook_secret"
    assert not any("hunter2" in (a or "") for a in audits)


def test_secret_rotation_reseals_the_notification_secrets(ctx):
    from optsync.services.notifications.settings import load_secrets
    from optsync.services.secret_rotation import rotate

    saved = save(ctx, password="pw-123456", webhook_url="https://hooks.example.com/x")
    new_key = "n" * 40
    with ctx.db.transaction() as s:
        rotate(s, KEY, new_key, actor="cli:test", now=ctx.clock())
    with ctx.db.transaction() as s:
        assert load_secrets(s, new_key) == {
            "smtp_password": "pw-123456",
            "webhook_secret": saved.new_webhook_secret,
        }


def test_no_database_transaction_is_open_while_sending(ctx, clock):
    """The sending thread holds no pooled connection (no open transaction) during the
    SMTP conversation or the webhook POST."""
    import threading

    from sqlalchemy import event
    from sqlalchemy.pool import Pool

    from optsync.services.notifications.channels import send_email

    owners: dict[int, int] = {}
    lock = threading.Lock()
    held: list[str] = []
    calls: list[str] = []

    def checkout(_dbapi, record, _proxy):
        with lock:
            owners[id(record)] = threading.get_ident()

    def checkin(_dbapi, record):
        with lock:
            owners.pop(id(record), None)

    def guarded(name, send):
        def wrapped(*args, **kwargs):
            with lock:
                calls.append(name)
                if threading.get_ident() in owners.values():
                    held.append(name)
            return send(*args, **kwargs)

        return wrapped

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    try:
        with SmtpServer() as smtp, WebhookServer() as hook:
            save(
                ctx,
                **{**email_settings(smtp.port), "smtp_username": None},
                webhook_enabled=True,
                webhook_url=hook.url,
            )
            with ctx.db.transaction() as s:
                add_run(s, clock(), status="failed", error="boom", minutes_ago=2)
            senders = Channels(
                email=guarded("email", send_email),
                webhook=guarded("webhook", functools.partial(send_webhook, sleep=lambda s: None)),
            )
            result = notify_tick(
                ctx.db, secret_key=KEY, base_url="https://x", now=clock(), senders=senders
            )
            assert len(result.sent) == 1 and len(smtp.box.messages) == 1
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Pool, "checkin", checkin)
    assert calls == ["email", "webhook"]
    assert held == [], f"a transaction was open while sending by {held}"


def test_the_worker_scheduler_tick_sends_notifications(ctx, clock):
    from optsync.worker.scheduler import notify_now

    with WebhookServer() as hook:
        save(ctx, webhook_enabled=True, webhook_url=hook.url)
        with ctx.db.transaction() as s:
            run_id = add_run(s, clock(), status="failed", error="boom", minutes_ago=2)
        notify_now(ctx)
        notify_now(ctx)  # the next tick: nothing again
        assert [json.loads(b)["run_id"] for _h, b in hook.hook.requests] == [run_id]


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_starttls_and_tls_with_login_and_an_untrusted_server(tmp_path, security):
    """The channel itself over real TLS (the emulator's local CA signs the server's
    certificate): STARTTLS or implicit TLS, then AUTH (aiosmtpd offers AUTH only after
    STARTTLS here); an untrusted certificate is a clear error naming the handshake."""
    import ssl

    from optsync.emulator.tls import ensure_tls
    from optsync.services.notifications.channels import DeliveryError, send_email
    from optsync.services.notifications.settings import NotificationSettingsView

    files = ensure_tls(tmp_path / "tls", ["127.0.0.1"])
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files.cert_file, files.key_file)
    kwargs = {"starttls": server_ctx} if security == "starttls" else {"implicit_tls": server_ctx}
    with SmtpServer(users={"ops": "pw-tls-1"}, **kwargs) as smtp:
        view = NotificationSettingsView(
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_security=security,
            smtp_username="ops",
            email_from="optsync@example.com",
            email_to=("ops@example.com",),
        )
        trusted = ssl.create_default_context(cafile=str(files.ca_bundle))
        send_email(view, "pw-tls-1", "subject", "text", tls_context=trusted)
        assert smtp.box.messages[0]["Subject"] == "subject"
        with pytest.raises(DeliveryError) as untrusted:
            send_email(view, "pw-tls-1", "subject", "text", timeout=5)
        assert "TLS handshake" in str(untrusted.value)
        assert "pw-tls-1" not in str(untrusted.value)
