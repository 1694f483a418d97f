"""SQLAlchemy 2 models for everything optsync stores.

The schema is created and changed only by the Alembic migrations in
``optsync/store/migrations``; ``tests/integration/store/test_migrations.py`` proves that
upgrading an empty database yields exactly these models on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT primary keys on PostgreSQL, INTEGER on SQLite (where only INTEGER PRIMARY KEY
# is the auto-incrementing rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both databases (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware UTC value")
        from datetime import UTC

        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        from datetime import UTC

        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Person(Base):
    """Someone the sales team emails, and their opt-out state."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    salesforce_id: Mapped[str | None] = mapped_column(String(18), unique=True)
    salesforce_object: Mapped[str | None] = mapped_column(String(16))
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    unsubscribed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unsubscribe_source: Mapped[str | None] = mapped_column(String(32))
    resubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(
            "salesforce_object IS NULL OR salesforce_object IN ('Contact', 'Lead', 'Account')",
            name="object_kind",
        ),
        CheckConstraint(
            "(salesforce_id IS NULL) = (salesforce_object IS NULL)", name="link_complete"
        ),
        # the Unsubscribes listing: newest unsubscribes first
        Index("ix_persons_unsubscribed_at", "unsubscribed", "unsubscribed_at"),
        # the sync's push diff: unsubscribed persons with a record
        Index("ix_persons_unsubscribed_record", "unsubscribed", "salesforce_id"),
        # the Unsubscribes listing by address (A to Z, Z to A): read in order, no sort
        Index("ix_persons_unsubscribed_email", "unsubscribed", "email", "id"),
    )

    events: Mapped[list[LedgerEntry]] = relationship(
        back_populates="person", order_by="LedgerEntry.id", viewonly=True
    )


class LedgerEntry(Base):
    """One opt-out change. Append-only: database triggers refuse UPDATE and DELETE."""

    __tablename__ = "ledger"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    __table_args__ = (
        CheckConstraint("kind IN ('unsubscribe', 'resubscribe')", name="kind"),
        # the activity chart: unsubscribes per day and source
        Index("ix_ledger_kind_time", "kind", "created_at"),
    )

    person: Mapped[Person] = relationship(back_populates="events")


class OutboxPush(Base):
    """A push of one person's opt-out to Salesforce, written in the unsubscribe's transaction.

    States: ``pending`` (due at ``next_attempt_at``), ``in_flight`` (claimed by a worker
    until ``claimed_until``, on the database's clock; an expired claim is taken over),
    ``sent``, ``failed`` (permanent, with the fix; ``optsync push retry`` re-opens it),
    ``not_linked`` (waits for a Salesforce id), ``cancelled`` (the person was re-subscribed
    before it was sent). A person has at most one open (pending, in flight, not linked)
    push: a partial unique index enforces it, whatever the callers do.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    field: Mapped[str | None] = mapped_column(String(80))
    target_id: Mapped[str | None] = mapped_column(String(18))
    last_error_code: Mapped[str | None] = mapped_column(String(80))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    fix: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'in_flight', 'sent', 'failed', 'not_linked', 'cancelled')",
            name="state",
        ),
        Index("ix_outbox_due", "state", "next_attempt_at"),
        # a person's latest push (listing, person page, retries)
        Index("ix_outbox_person_latest", "person_id", "id"),
        # the activity chart (sent per day), pruning, the oldest open push
        Index("ix_outbox_state_sent", "state", "sent_at"),
        Index("ix_outbox_state_created", "state", "created_at"),
        # at most one open push per person
        Index(
            "uq_outbox_one_open",
            "person_id",
            unique=True,
            sqlite_where=text("state IN ('pending', 'in_flight', 'not_linked')"),
            postgresql_where=text("state IN ('pending', 'in_flight', 'not_linked')"),
        ),
    )


class SyncSettings(Base):
    """The unsubscribe-sync settings (a single row, id 1)."""

    __tablename__ = "sync_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sync_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    field: Mapped[str] = mapped_column(String(32), default="email_opt_out")
    sales_opt_out_field: Mapped[str] = mapped_column(String(80), default="Sales_Opt_Out__c")
    schedule: Mapped[str] = mapped_column(String(120), default="0 20 * * *")
    timezone: Mapped[str] = mapped_column(String(64), default="America/Los_Angeles")
    # when the sync was last switched on (the schedule's start; other edits do not move it)
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(254))
    # how Salesforce-side opt-outs arrive between nightly runs (docs/sync.md "Live pull")
    live_pull: Mapped[str] = mapped_column(String(8), default="auto", server_default="auto")
    poll_interval_s: Mapped[int] = mapped_column(Integer, default=60, server_default="60")
    # which of an address's records becomes the person's primary (linked) record
    # (docs/sync.md "Records per address"; optsync.domain.records.LINK_RULES)
    link_rule: Mapped[str] = mapped_column(
        String(24), default="contact_then_lead", server_default="contact_then_lead"
    )
    # a Salesforce opt-out of an address optsync has never seen adds a suppressed person
    suppress_unknown: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )

    __table_args__ = (
        CheckConstraint("id = 1", name="singleton"),
        CheckConstraint("field IN ('email_opt_out', 'sales_opt_out')", name="field_choice"),
        CheckConstraint("live_pull IN ('auto', 'cdc', 'poll', 'off')", name="live_pull_mode"),
        CheckConstraint("poll_interval_s BETWEEN 15 AND 3600", name="poll_interval"),
        CheckConstraint(
            "link_rule IN ('contact_then_lead', 'lead_then_contact', 'contact_only', "
            "'lead_only', 'off')",
            name="link_rule",
        ),
    )


class SalesforceConnection(Base):
    """The stored Salesforce connection (a single row, id 1). Secrets are encrypted."""

    __tablename__ = "salesforce_connection"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    auth: Mapped[str] = mapped_column(String(32))
    login_url: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str | None] = mapped_column(String(500))
    username: Mapped[str | None] = mapped_column(String(254))
    api_version: Mapped[str] = mapped_column(String(8))
    ca_bundle: Mapped[str | None] = mapped_column(String(1000))
    secrets: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet token of a JSON object
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("id = 1", name="singleton"),
        CheckConstraint("auth IN ('jwt', 'client_credentials', 'password')", name="auth"),
    )


class SyncRun(Base):
    """One run of the bidirectional sync, with its report."""

    __tablename__ = "sync_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    field: Mapped[str | None] = mapped_column(String(80))
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    worker: Mapped[str | None] = mapped_column(String(120))
    # the last ledger entry when the run began: a pull leaves alone persons whose ledger
    # moved past it (the run read Salesforce before that change)
    ledger_watermark: Mapped[int | None] = mapped_column(BigInteger)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint("trigger IN ('schedule', 'manual')", name="trigger"),
        CheckConstraint("status IN ('running', 'succeeded', 'failed')", name="status"),
        # one run per scheduled instant, whatever the number of workers
        UniqueConstraint("scheduled_for", name="uq_sync_runs_scheduled_for"),
        # at most one running run per installation
        Index(
            "uq_sync_runs_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )


class SyncRunFailure(Base):
    """A record a sync run could not push, with the Salesforce error and the fix."""

    __tablename__ = "sync_run_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    salesforce_id: Mapped[str | None] = mapped_column(String(18))
    code: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(Text)
    fix: Mapped[str | None] = mapped_column(Text)


class SyncRemoteOptOut(Base):
    """Scratch rows: the Salesforce ids a run found with the opt-out field set.

    A run streams the remote opted-out set here in chunks instead of holding it in
    memory, then diffs it against ``persons`` in SQL. Rows belong to one run and are
    deleted when it ends (or when a later run finds them left by a dead one).
    """

    __tablename__ = "sync_remote_optouts"

    run_id: Mapped[int] = mapped_column(
        BigId,
        ForeignKey("sync_runs.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    )
    salesforce_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    object: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint("object IN ('Contact', 'Lead', 'Account')", name="object_kind"),
    )


class User(Base):
    """A person who signs in to the web app."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # random, copied into the session cookie at sign-in and compared on every request:
    # a new value (password reset, secret-key rotation) ends every session of the user,
    # and a user re-created under a reused id never inherits an old session
    session_epoch: Mapped[str] = mapped_column(String(32))


class ApiToken(Base):
    """A bearer token for the REST API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(120))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        # a name names one live token (``optsync token revoke NAME``); a revoked token
        # keeps its name in the list, and the name may be used again
        Index(
            "uq_api_tokens_live_name",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )


class AdminAuditEntry(Base):
    """A change to users, tokens or the secret key: who, what, to whom, when.

    Written in the same transaction as the change; shown on Settings → Admin Settings →
    Users and tokens and exported by ``optsync audit export``. Never holds a secret.
    """

    __tablename__ = "admin_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(254))
    detail: Mapped[str | None] = mapped_column(Text)


class RetiredLinkKey(Base):
    """The unsubscribe-link signing key of a retired ``OPTSYNC_SECRET_KEY``.

    Kept for ever (links in old emails must keep working): the public ``/u/`` pages
    verify a link with the current key first, then with these. Only the derived
    link key is kept, never the retired secret key itself, sealed with a key derived
    from the current secret key (``optsync secret rotate`` re-seals them all).
    """

    __tablename__ = "retired_link_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sealed_key: Mapped[bytes] = mapped_column(LargeBinary)
    retired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """A failed sign-in to the web app, kept so that throttling holds across processes.

    ``key_hash`` is an HMAC of the typed address and the client IP, never the address
    itself: the table must not become a list of who tried to sign in. Rows older than
    the throttle window are deleted as new failures arrive.
    """

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    __table_args__ = (Index("ix_login_attempts_key_time", "key_hash", "created_at"),)


class LivePullState(Base):
    """Where the live pull of one object (Contact, Lead) stands: the Change Data Capture
    replay id (opaque bytes, written in the transaction of the opt-outs it follows), the
    commit time of the last change seen (a catch-up starts there), the poller's next
    window start, and what the Integrations tab shows."""

    __tablename__ = "live_pull_state"

    object: Mapped[str] = mapped_column(String(16), primary_key=True)
    replay_id: Mapped[bytes | None] = mapped_column(LargeBinary)
    last_commit_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    poll_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mode: Mapped[str] = mapped_column(String(8), default="cdc")
    status: Mapped[str] = mapped_column(String(16), default="starting")
    detail: Mapped[str | None] = mapped_column(String(255))
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("object IN ('Contact', 'Lead', 'Account')", name="object"),
        CheckConstraint("mode IN ('cdc', 'poll')", name="mode"),
    )


class LivePullLease(Base):
    """The one live-pull subscriber of the installation (a single row, id 1): the worker
    named ``holder`` may subscribe until ``expires_at`` on the database's clock."""

    __tablename__ = "live_pull_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(120))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)


class SalesforceRecord(Base):
    """optsync's mirror of the Salesforce records that carry an address: Contacts, Leads
    and Person Accounts, fed by pulls, the nightly run, the live pull and push-time
    lookups. ``email`` is normalised as optsync normalises addresses (NULL when the
    record has none, or one optsync cannot use); the opt-out fields hold the last value
    seen (NULL when not read). A record stays mirrored when it loses its address: the
    opt-out it carries is never cleared by optsync."""

    __tablename__ = "salesforce_records"

    record_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    object: Mapped[str] = mapped_column(String(16))
    email: Mapped[str | None] = mapped_column(String(254))
    email_opt_out: Mapped[bool | None] = mapped_column(Boolean)
    sales_opt_out: Mapped[bool | None] = mapped_column(Boolean)
    converted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    system_modstamp: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("object IN ('Contact', 'Lead', 'Account')", name="object_kind"),
        # every record of an address (push fan-out, pull by address, the person page)
        Index("ix_salesforce_records_email", "email"),
        # records changed since a point in time (the nightly's incremental pass)
        Index("ix_salesforce_records_modstamp", "system_modstamp"),
    )


class SalesforceAddress(Base):
    """How many live (not deleted) mirrored records carry each address, kept by triggers
    on ``salesforce_records`` (migration 0012): every write of the mirror keeps it, and
    the nightly's duplicate-address total is read from its partial index instead of a
    ``GROUP BY`` over the whole mirror. A row may say 0. Written by the database only."""

    __tablename__ = "salesforce_addresses"

    email: Mapped[str] = mapped_column(String(254), primary_key=True)
    records: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index(
            "ix_salesforce_addresses_shared",
            "email",
            postgresql_where=text("records > 1"),
            sqlite_where=text("records > 1"),
        ),
    )


class SalesforceMirror(Base):
    """How far the record mirror can be trusted (a single row, id 1): every record changed
    in Salesforce up to ``through`` (a SystemModstamp) is mirrored; ``complete_at`` is the
    last full re-mirror. ``trusted`` turns false when a change may have been missed (a
    Change Data Capture gap or overflow, a changed field choice): the next nightly run
    re-mirrors in full."""

    __tablename__ = "salesforce_mirror"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through: Mapped[datetime | None] = mapped_column(UTCDateTime())
    complete_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)


class PushRecord(Base):
    """One Salesforce record a push set (or failed to set): a push of an address fans out
    to every record that carries it."""

    __tablename__ = "push_records"

    push_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    record_id: Mapped[str] = mapped_column(String(18), primary_key=True)
    object: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(80))
    message: Mapped[str | None] = mapped_column(Text)
    fix: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # the field's API name this outcome was for: a retry after a field switch sets the
    # new field on the records set with the old one (migration 0009)
    field: Mapped[str | None] = mapped_column(String(80))

    __table_args__ = (
        CheckConstraint("object IN ('Contact', 'Lead', 'Account')", name="object_kind"),
        CheckConstraint("state IN ('sent', 'failed')", name="state"),
        # the records a push failed on (the "some records failed" filter)
        Index("ix_push_records_state", "state", "push_id"),
    )


class NotificationSettings(Base):
    """Where failed runs and stuck pushes are announced (a single row, id 1): by email
    over SMTP and/or to a webhook. ``secrets`` is a :class:`optsync.security.SecretBox`
    blob of ``{"smtp_password", "webhook_secret"}``, never shown back (docs/sync.md
    "Notifications")."""

    __tablename__ = "notification_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    smtp_host: Mapped[str | None] = mapped_column(String(255))
    smtp_port: Mapped[int] = mapped_column(Integer, default=587)
    smtp_security: Mapped[str] = mapped_column(String(8), default="starttls")
    smtp_username: Mapped[str | None] = mapped_column(String(254))
    email_from: Mapped[str | None] = mapped_column(String(254))
    email_to: Mapped[str | None] = mapped_column(Text)  # addresses, comma-separated
    webhook_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_timeout_s: Mapped[int] = mapped_column(Integer, default=10)
    webhook_retries: Mapped[int] = mapped_column(Integer, default=2)
    stuck_after_min: Mapped[int] = mapped_column(Integer, default=15)
    notify_resolved: Mapped[bool] = mapped_column(Boolean, default=True)
    # when a channel was last switched on: failures before it are not announced
    enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    secrets: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(254))

    __table_args__ = (
        CheckConstraint("id = 1", name="singleton"),
        CheckConstraint("smtp_security IN ('none', 'starttls', 'tls')", name="smtp_security"),
        CheckConstraint("smtp_port BETWEEN 1 AND 65535", name="smtp_port"),
        CheckConstraint("webhook_timeout_s BETWEEN 1 AND 60", name="webhook_timeout"),
        CheckConstraint("webhook_retries BETWEEN 0 AND 5", name="webhook_retries"),
        CheckConstraint("stuck_after_min BETWEEN 1 AND 1440", name="stuck_after"),
    )


class NotificationEvent(Base):
    """One thing to announce, once: a failed run (``run_failed:ID``), the start of a spell
    of stuck pushes (``pushes_stuck:OLDEST_PUSH_ID``) or its end (``…:resolved``). The
    unique ``key`` is the dedup: every worker may find the same failure, one INSERT wins.
    ``state`` is the delivery: ``pending`` (due at ``next_attempt_at``), ``sent`` or
    ``failed`` (gave up); ``deliveries`` holds each channel's last outcome."""

    __tablename__ = "notification_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deliveries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("kind IN ('run_failed', 'pushes_stuck', 'resolved')", name="kind"),
        CheckConstraint("state IN ('pending', 'sent', 'failed')", name="state"),
        Index("ix_notification_events_due", "state", "next_attempt_at"),
        Index("ix_notification_events_kind", "kind", "resolved_at"),
    )


class SyncRunPreview(Base):
    """What a dry run would pull and push, record by record (the report keeps the first
    :data:`optsync.services.sync.options.PREVIEW_LISTED`): a pull row per person it would
    unsubscribe (naming the opted-out record that pulls them) and per unknown address it
    would add as a suppressed person (no ``person_id``), a push row per record it would
    set (the linked one and every duplicate of the address). Written in the diff's
    transaction, deleted with the run or by retention."""

    __tablename__ = "sync_run_preview"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sync_runs.id", ondelete="CASCADE"), autoincrement=False
    )
    direction: Mapped[str] = mapped_column(String(4))
    person_id: Mapped[int | None] = mapped_column(BigId, autoincrement=False)
    """None: an address no person has, which the pull would add (``suppress_unknown``)."""
    email: Mapped[str] = mapped_column(String(254))
    salesforce_id: Mapped[str | None] = mapped_column(String(18))
    """Always set since schema 0011 (a pull by address of an unlinked person stored none
    before it)."""
    object: Mapped[str | None] = mapped_column(String(16))

    __table_args__ = (
        CheckConstraint("direction IN ('pull', 'push')", name="direction"),
        Index("ix_sync_run_preview_listed", "run_id", "direction", "person_id", "salesforce_id"),
    )
