"""``optsync demo``: a complete optsync on this machine, against a local Salesforce org.

Starts the Salesforce emulator (seeded once with Contacts and Leads, some already opted
out), an embedded SQLite store with those persons pulled and linked, an admin user, the
web app and the push worker, all in this process. Running it again reuses the data in
``OPTSYNC_DATA_DIR``.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import typer
import uvicorn
from rich.console import Console

from optsync import logs
from optsync.bootstrap import Context, open_context
from optsync.cli.common import check_port_free, err_console, optsync_command
from optsync.errors import UsageError

DEMO_FILE = "demo.json"
console = Console(soft_wrap=True)  # commands printed here must stay copy-pasteable


def demo(
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Web app port."),
    persons: int = typer.Option(
        2000, "--persons", min=10, max=1_000_000, help="Contacts + Leads to seed the first time."
    ),
    emulator_port: int = typer.Option(
        8443,
        "--emulator-port",
        min=0,
        max=65535,
        help="Salesforce emulator port (0: any free port).",
    ),
) -> None:
    """Emulator + store + web app + worker in one process; prints what to try."""
    from optsync.emulator import EmulatorOptions, run_emulator
    from optsync.settings import load_settings

    check_port_free("127.0.0.1", port)
    settings = load_settings()
    logs.configure(settings.log_format)
    data_dir = settings.ensure_data_dir()
    state_file = data_dir / DEMO_FILE
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    options = EmulatorOptions(
        data_dir=data_dir,
        host="127.0.0.1",
        port=emulator_port,
        memory=False,
        seed=0,
        sales_opt_out=True,
    )
    try:
        emulator_cm = run_emulator(options)
        emu = emulator_cm.__enter__()
    except OSError as exc:
        raise UsageError(
            f"--emulator-port {emulator_port}: {exc.strerror}.",
            field="--emulator-port",
            fix="Pick another port, or 0.",
        ) from None
    # the worker's live pull subscribes to this emulator's Pub/Sub API, not Salesforce's
    settings = settings.model_copy(update={"sf_pubsub_url": emu.pubsub_url})
    try:
        ctx = open_context(settings, require_schema=False)
        ctx.db.upgrade()
        first_run = not state
        if first_run:
            state = _first_run(ctx, emu, persons, state_file)
        _connect(ctx, emu)
        if first_run:
            _pull(ctx)
        _serve(ctx, emu, port, state)
    finally:
        emulator_cm.__exit__(None, None, None)


def _first_run(ctx: Context, emu, persons: int, state_file: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    from optsync.services.accounts import add_user

    console.print(f"Seeding the local Salesforce org with {persons:,} Contacts and Leads...")
    emu.seed(contacts=persons // 2, leads=persons - persons // 2, opted_out_fraction=0.05)
    password = secrets.token_urlsafe(12)
    with ctx.db.transaction() as session:
        add_user(session, "admin@example.com", password, is_admin=True, now=ctx.clock())
    state = {"admin_email": "admin@example.com", "admin_password": password}
    fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh)
    return state


def _connect(ctx: Context, emu) -> None:  # type: ignore[no-untyped-def]
    """(Re)store the connection to the emulator: its port may change between runs."""
    from optsync.salesforce.connection import ConnectionConfig, save_connection

    config = ConnectionConfig(
        auth="client_credentials",
        login_url=emu.login_url,
        client_id=emu.client_id,
        client_secret=emu.client_secret,
        username=emu.username,
        password=None,
        private_key=None,
        api_version="62.0",
        ca_bundle=emu.ca_bundle,
    ).validated()
    with ctx.db.transaction() as session:
        save_connection(session, config, ctx.settings.resolved_secret_key, now=ctx.clock())


def _pull(ctx: Context) -> None:
    from optsync.salesforce.gateway import Profile, open_gateway
    from optsync.services.persons_pull import pull_persons

    console.print("Pulling persons from Salesforce...")
    with open_gateway(ctx, Profile.JOB) as gateway:
        reports = pull_persons(ctx.db, gateway, now=ctx.clock())
    console.print(", ".join(f"{r.created:,} persons from {obj}s" for obj, r in reports.items()))


def _serve(ctx: Context, emu, port: int, state: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from optsync.services.links import UnsubscribeLinks
    from optsync.store.models import Person
    from optsync.web import access_log
    from optsync.web.app import create_app
    from optsync.worker.runner import Worker

    with ctx.db.transaction() as session:
        sample = session.scalars(
            select(Person)
            .where(Person.unsubscribed.is_(False), Person.salesforce_object == "Contact")
            .order_by(Person.id)
        ).first()
        other = session.scalars(
            select(Person)
            .where(Person.unsubscribed.is_(False), Person.salesforce_object == "Lead")
            .order_by(Person.id)
        ).first()
    base = f"http://127.0.0.1:{port}"
    if "OPTSYNC_BASE_URL" not in os.environ:  # links must point at this demo's port
        ctx.settings = ctx.settings.model_copy(update={"base_url": base})
    links = UnsubscribeLinks.from_settings(ctx.settings)
    link = links.for_person(sample.id).url if sample else None
    worker = Worker(ctx)
    app = create_app(ctx)
    access_log.install()
    worker.start()
    data = os.environ.get("OPTSYNC_DATA_DIR", "./.optsync")
    console.rule("[bold]optsync demo")
    console.print(
        f"Web app:     {base}   (login {state['admin_email']} / {state['admin_password']})"
    )
    console.print(f"Salesforce:  {emu.instance_url}   (local emulator; CA {emu.ca_bundle})")
    console.print("\n[bold]Three things to try[/]")
    if link and sample:
        console.print(
            f"1. Unsubscribe {sample.email}: open {link} and press Unsubscribe;"
            f" within a second its Contact has Email Opt Out set:\n"
            f"   curl -s --cacert {emu.ca_bundle} "
            f"{emu.control_url}/records/{sample.salesforce_id}"
        )
    if other:
        console.print(
            f"2. Tick Email Opt Out in Salesforce for Lead {other.salesforce_id}:\n"
            f"   curl -s --cacert {emu.ca_bundle} -X PATCH -H 'Content-Type: "
            f"application/json' -d '{{\"HasOptedOutOfEmail\": true}}' "
            f"{emu.control_url}/records/{other.salesforce_id}"
        )
    cmd = optsync_command()
    console.print(
        f"3. Turn the sync on and run it now (another shell, in this directory):\n"
        f"   export OPTSYNC_DATA_DIR={data}\n"
        f"   {cmd} settings set --sync-enabled true && {cmd} sync run\n"
        f"   ({other.email if other else 'the Lead'} is now unsubscribed here too)"
    )
    console.print("\nCtrl-C stops everything; running `optsync demo` again reuses the data.")
    try:
        uvicorn.run(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            server_header=False,
            log_config=logs.dict_config(ctx.settings.log_format),
        )
    finally:
        worker.stop()
        ctx.close()
        err_console.print("demo stopped.")
