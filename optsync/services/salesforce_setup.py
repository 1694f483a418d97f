"""Setup checks: can optsync push opt-outs to this org right now, and if not, why?

Three questions, each answered live and each failure carrying the fix an admin applies
in Salesforce or optsync: does the connection work (a token and one cheap call), is the
field that pushes will write a checkbox the integration user can update on Contact
*and* Lead, and which unsubscribed addresses Salesforce has in records the linking rule
does not link (an address with no record is "Not in Salesforce", not a failure).

The field checked is the one pushes actually write (``push_field()``): with "Sync to
Salesforce" off every push writes Email Opt Out, whatever field is selected.

:func:`setup_checks` is the one entry point for the CLI (``optsync salesforce check``),
the admin Integrations tab and ``GET /api/v1/salesforce/check``. No database transaction
is open while Salesforce is asked: the settings and the persons count are each read in
a short transaction of their own, before and after the calls.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from optsync.domain.records import DEFAULT_LINK_RULE, linked_objects, parse_link_rule
from optsync.errors import OptsyncError, UsageError
from optsync.salesforce.errors import SalesforceAuthError
from optsync.salesforce.gateway import (
    NO_CONNECTION,
    Profile,
    SalesforceGateway,
    build_gateway,
    connection_in_force,
)
from optsync.services.sync_settings import get_settings
from optsync.store.db import Database
from optsync.store.models import Person, SalesforceRecord, SyncSettings

if TYPE_CHECKING:
    from optsync.bootstrap import Context

CONNECT_FIX = (
    "Run `optsync salesforce connect` (or set the OPTSYNC_SF_* variables) with the "
    "connected app's consumer key and the integration user; see docs/salesforce.md."
)
CDC_CHECK = "Change Data Capture"
CDC_FIX = (
    "In Salesforce: Setup → Integrations → Change Data Capture → Selected Entities: add "
    "{missing}. Until then optsync polls every poll interval (live pull `auto`)."
)
LINK_FIX = (
    "Choose a linking rule that links their records (`optsync settings set --link-rule "
    "contact_then_lead`, or Linking rule on the Integrations tab), or give them their "
    "record's id with `optsync persons import FILE.csv` (a salesforce_id column). Their "
    "records are set either way."
)


@dataclass(frozen=True)
class Check:
    """One setup check: ``fix`` is set when ``ok`` is false."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def setup_checks(ctx: Context, profile: Profile | str = Profile.PAGE) -> list[Check]:
    """Every check for the connection in force; an unusable connection (incomplete or
    invalid settings) is a failed connection check that says why."""
    problem_fix: str | None = None
    try:
        config, problem = connection_in_force(ctx), None
    except UsageError as exc:  # e.g. stored credentials this secret key cannot decrypt
        config, problem, problem_fix = None, exc.message, exc.fix
    except OptsyncError as exc:
        config, problem = None, str(exc)
    gateway = build_gateway(config, profile) if config is not None else None
    try:
        checks = run_checks(gateway, ctx.db)
        if checks[0].ok and gateway is not None and _wants_cdc(ctx.db):
            checks.insert(-1, cdc_check(gateway, ctx.settings.sf_pubsub_url))
    finally:
        if gateway is not None:
            gateway.close()
    if problem:
        first = checks[0]
        checks[0] = Check(first.name, False, problem, problem_fix or first.fix)
    return checks


def run_checks(
    gateway: SalesforceGateway | None, db: Database, field: str | None = None
) -> list[Check]:
    """Run every check; never raises for a Salesforce problem (it becomes a failed check).

    ``field`` defaults to the field pushes write under the current settings.
    """
    if field is None:
        with db.transaction() as session:
            field = get_settings(session).push_field()
    checks = [_connection(gateway)]
    if checks[0].ok and gateway is not None:
        checks.extend(_field_checks(gateway, field))
    else:
        checks.extend(
            Check(
                f"{field} on {obj}",
                False,
                "Not checked: no working Salesforce connection.",
                "Fix the connection first.",
            )
            for obj in ("Contact", "Lead")
        )
    with db.transaction() as session:
        checks.append(_linked_persons(session))
    return checks


def _connection(gateway: SalesforceGateway | None) -> Check:
    if gateway is None:
        return Check(
            "connection", False, NO_CONNECTION[0].upper() + NO_CONNECTION[1:] + ".", CONNECT_FIX
        )
    try:
        limits = gateway.limits()
    except OptsyncError as exc:
        fix = getattr(exc, "fix", None) or getattr(
            getattr(exc, "classification", None), "fix", None
        )
        # An auth error's str() already ends with its fix; show the fix once, apart.
        message = exc.args[0] if isinstance(exc, SalesforceAuthError) else str(exc)
        return Check("connection", False, str(message), fix or CONNECT_FIX)
    daily = limits.get("DailyApiRequests") or {}
    detail = f"Connected to {gateway.instance_url} ({gateway.config.auth} auth"
    if gateway.config.username:
        detail += f" as {gateway.config.username}"
    detail += ")"
    if isinstance(daily, dict) and "Max" in daily and "Remaining" in daily:
        detail += f"; daily API requests {daily['Remaining']} of {daily['Max']} remaining"
    return Check("connection", True, detail + ".")


def _field_checks(gateway: SalesforceGateway, field: str) -> list[Check]:
    try:
        results = gateway.check_field(field)
    except OptsyncError as exc:
        fix = getattr(getattr(exc, "classification", None), "fix", None) or getattr(
            exc, "fix", None
        )
        return [Check(f"{field} on {obj}", False, str(exc), fix) for obj in ("Contact", "Lead")]
    out = []
    for r in results:
        name = f"{field} on {r.object}"
        if r.ok:
            label = f" ({r.label})" if r.label else ""
            out.append(
                Check(
                    name,
                    True,
                    f"{r.object}.{r.field}{label} is a checkbox the integration user can update.",
                )
            )
        else:
            out.append(Check(name, False, r.problem or "unusable", r.fix))
    return out


NAMED = 5
"""How many addresses the "persons linked" check names."""


def _linked_persons(session: Session) -> Check:
    """Counts what an admin can act on (issue 16): an unsubscribed person without a
    primary record whose address Salesforce *has*, in records the linking rule does not
    link. An address no Salesforce record carries is "Not in Salesforce": nothing to fix
    (its opt-out is kept here, and reaches a record the moment one appears). One the
    rule links is linked by the next sync run or live pull. Every record of an address
    is set whatever the link, so none of these stops an opt-out."""
    row = session.get(SyncSettings, 1)
    rule = parse_link_rule(row.link_rule) if row is not None else DEFAULT_LINK_RULE
    linkable = list(linked_objects(rule))
    total, unlinked = session.execute(
        select(func.count(Person.id), func.count(Person.id).filter(Person.salesforce_id.is_(None)))
    ).one()
    live = and_(
        SalesforceRecord.email == Person.email,
        SalesforceRecord.deleted.is_(False),
        SalesforceRecord.converted.is_(False),
    )
    waiting = and_(Person.salesforce_id.is_(None), Person.unsubscribed.is_(True))
    in_salesforce = exists().where(live)
    rule_links = exists().where(live, SalesforceRecord.object.in_(linkable))
    not_in, pending = session.execute(
        select(
            func.count(Person.id).filter(~in_salesforce),
            func.count(Person.id).filter(in_salesforce, rule_links),
        ).where(waiting)
    ).one()
    actionable = [
        str(e)
        for e in session.scalars(
            select(Person.email)
            .where(waiting, in_salesforce, ~rule_links)
            .order_by(Person.email)
            .limit(NAMED + 1)
        )
    ]
    count = (
        session.scalar(select(func.count(Person.id)).where(waiting, in_salesforce, ~rule_links))
        or 0
    )
    detail = f"{total - unlinked:,} of {total:,} persons are linked to a Salesforce record."
    if not_in:
        detail += (
            f" {not_in:,} unsubscribed addresses are Not in Salesforce (no record carries "
            "them; their opt-outs are kept here and reach a record when one appears)."
        )
    if pending:
        detail += f" {pending:,} will be linked by the next sync run."
    if count:
        named = ", ".join(actionable[:NAMED]) + (
            f" and {count - NAMED:,} more" if count > NAMED else ""
        )
        detail += (
            f" {count:,} unsubscribed addresses are in Salesforce only as records the linking "
            f"rule {rule} does not link: {named}."
        )
    ok = count == 0
    return Check("persons linked", ok, detail, None if ok else LINK_FIX)


def _wants_cdc(db: Database) -> bool:
    """The CDC check runs when the live pull would subscribe (sync on, mode auto/cdc)."""
    with db.transaction() as session:
        settings = get_settings(session)
    return settings.sync_enabled and settings.live_pull in ("auto", "cdc")


def cdc_check(gateway: SalesforceGateway, pubsub_url: str) -> Check:
    """Can the live pull subscribe to the change events of every object it follows?
    (``GetTopic`` on each object's topic over the Pub/Sub API: Contact and Lead, and
    Account in an org with Person Accounts.) Not a blocker: without it optsync polls."""
    from optsync.domain.live_pull import OBJECTS, PERSON_ACCOUNTS, TOPICS
    from optsync.salesforce.pubsub import Problem, PubSubClient, PubSubError

    followed = [*OBJECTS, *([PERSON_ACCOUNTS] if gateway.has_person_accounts() else [])]
    named = _and(followed)
    client = PubSubClient(pubsub_url, gateway, timeout_s=5.0)
    missing: list[str] = []
    try:
        for obj in followed:
            try:
                client.topic(TOPICS[obj])
            except PubSubError as exc:
                if exc.problem is not Problem.TOPIC_UNAVAILABLE:
                    return Check(
                        CDC_CHECK,
                        False,
                        f"The Pub/Sub API at {pubsub_url} could not be asked: {exc}",
                        "Check OPTSYNC_SF_PUBSUB_URL and that the org's edition has the "
                        "Pub/Sub API (Enterprise, Performance, Unlimited, Developer).",
                    )
                missing.append(obj)
    finally:
        client.close()
    if missing:
        return Check(
            CDC_CHECK,
            False,
            f"CDC not enabled for {_and(missing)}.",
            CDC_FIX.format(missing=_and(missing)),
        )
    return Check(CDC_CHECK, True, f"{named} change events can be subscribed to.")


def _and(names: list[str]) -> str:
    """``Contact``, ``Contact and Lead``, ``Contact, Lead and Account``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
