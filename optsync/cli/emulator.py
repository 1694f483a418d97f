"""``optsync emulator``: run the local Salesforce org alone until Ctrl-C.

Thin by design: validate the options, start the emulator from ``optsync.emulator`` and
print how to connect (Rich for people, one JSON line with ``--json`` for scripts that
wait for it to be ready).
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Mapping

import typer
from rich.console import Console
from rich.table import Table

from optsync.errors import UsageError

DEFAULT_DAILY_API_LIMIT = 1_000_000
DEFAULT_PUBSUB_PORT = 7443  # Salesforce's own Pub/Sub API port


def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8443, help="HTTPS port; 0 picks a free one."),
    pubsub_port: int | None = typer.Option(
        None,
        help="Pub/Sub API (gRPC over TLS) port; 0 picks a free one. "
        "Default 7443, or a free one with --port 0.",
    ),
    seed: int = typer.Option(0, help="Records to generate into an empty org at start."),
    seed_person_accounts: int = typer.Option(
        0, help="Person accounts to add to the seed (needs --person-accounts)."
    ),
    seed_duplicate_fraction: float = typer.Option(
        0.0, help="Share of seeded records carrying another seeded record's address."
    ),
    latency_ms: int = typer.Option(0, help="Latency added to every API call, in ms."),
    fault_rate: float = typer.Option(
        0.0, help="Share of API calls failing with SERVER_UNAVAILABLE / UNABLE_TO_LOCK_ROW."
    ),
    daily_api_limit: int = typer.Option(
        DEFAULT_DAILY_API_LIMIT, help="Rolling 24-hour API request allocation."
    ),
    without_sales_opt_out: bool = typer.Option(
        False, "--without-sales-opt-out", help="Do not create the Sales_Opt_Out__c field."
    ),
    without_cdc: bool = typer.Option(
        False, "--without-cdc", help="Select no entity for Change Data Capture at start."
    ),
    person_accounts: bool = typer.Option(
        False, "--person-accounts", help="Enable Person Accounts in the org at start."
    ),
    memory: bool = typer.Option(False, "--memory", help="Keep org data in memory only."),
    json_: bool = typer.Option(False, "--json", help="Print one JSON line when ready."),
) -> None:
    """Run the Salesforce emulator (REST + Bulk API 2.0 over HTTPS) until Ctrl-C."""
    from optsync.emulator import EmulatorOptions, run_emulator
    from optsync.settings import load_settings

    if not 0.0 <= fault_rate <= 1.0:
        raise UsageError(
            f"--fault-rate {fault_rate} is outside 0..1.",
            field="--fault-rate",
            fix="Use a share such as 0.05 for 5 %.",
        )
    if not 0.0 <= seed_duplicate_fraction <= 1.0:
        raise UsageError(
            f"--seed-duplicate-fraction {seed_duplicate_fraction} is outside 0..1.",
            field="--seed-duplicate-fraction",
            fix="Use a share such as 0.1 for 10 %.",
        )
    if seed_person_accounts and not person_accounts:
        raise UsageError(
            "--seed-person-accounts needs an org with Person Accounts.",
            field="--seed-person-accounts",
            fix="Add --person-accounts.",
        )
    for name, value in (
        ("--seed", seed),
        ("--seed-person-accounts", seed_person_accounts),
        ("--latency-ms", latency_ms),
        ("--daily-api-limit", daily_api_limit),
    ):
        if value < 0:
            raise UsageError(f"{name} must be at least 0.", field=name, fix="Use 0 or more.")
    if pubsub_port is None:
        pubsub_port = 0 if port == 0 else DEFAULT_PUBSUB_PORT
    for name, value in (("--port", port), ("--pubsub-port", pubsub_port)):
        if not 0 <= value <= 65535:
            raise UsageError(
                f"{name} {value} is not a TCP port.",
                field=name,
                fix="Use 1-65535, or 0 for a free port.",
            )
    data_dir = load_settings().ensure_data_dir()
    options = EmulatorOptions(
        data_dir=data_dir,
        host=host,
        port=port,
        memory=memory,
        seed=seed,
        latency_ms=latency_ms,
        fault_rate=fault_rate,
        daily_api_limit=daily_api_limit,
        sales_opt_out=not without_sales_opt_out,
        cdc=not without_cdc,
        pubsub_port=pubsub_port,
        person_accounts=person_accounts,
        seed_person_accounts=seed_person_accounts,
        seed_duplicate_fraction=seed_duplicate_fraction,
    )
    console = Console()
    previous = signal.signal(signal.SIGTERM, _terminate)  # before "ready" is printed
    try:
        with run_emulator(options) as emu:
            if json_:
                print(json.dumps(emu.summary()), flush=True)
            else:
                table = Table(title="optsync Salesforce emulator", show_header=False)
                table.add_column("name", style="bold", no_wrap=True)
                table.add_column("value", overflow="fold")  # credentials must print whole
                for fact, text in emu.summary().items():
                    table.add_row(fact, text)
                console.print(table)
                console.print("[bold]Environment for optsync:[/bold]")
                console.print(
                    env_block(emu.summary()), markup=False, highlight=False, soft_wrap=True
                )
                console.print("[dim]Press Ctrl-C to stop.[/dim]")
            _wait_for_interrupt()
    except OSError as exc:
        raise UsageError(
            f"Cannot listen on {host}:{port} (Pub/Sub {pubsub_port}): {exc.strerror or exc}.",
            field="--port",
            fix="Pick another --port / --pubsub-port (0 chooses a free one).",
        ) from None
    except KeyboardInterrupt:
        pass  # interrupted while starting or printing: the server is already stopped
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not json_:
        console.print("Emulator stopped.")


def settings_env(facts: Mapping[str, str]) -> dict[str, str]:
    """The ``OPTSYNC_SF_*`` settings that connect optsync to an emulator, from its
    connection facts (``Emulator.summary()``, or the ``--json`` line).

    The one place that maps the emulator onto optsync's setting names: the emulator
    itself knows nothing of optsync (docs/architecture.md), so this lives with the command
    that starts it; the tests' fixture uses it too.
    """
    return {
        "OPTSYNC_SF_AUTH": "client_credentials",
        "OPTSYNC_SF_LOGIN_URL": facts["login_url"],
        "OPTSYNC_SF_CLIENT_ID": facts["client_id"],
        "OPTSYNC_SF_CLIENT_SECRET": facts["client_secret"],
        "OPTSYNC_SF_USERNAME": facts["username"],
        "OPTSYNC_SF_PASSWORD": facts["password"],
        "OPTSYNC_SF_PRIVATE_KEY_FILE": facts["private_key_file"],
        "OPTSYNC_SF_CA_BUNDLE": facts["ca_bundle"],
        **({"OPTSYNC_SF_PUBSUB_URL": facts["pubsub_url"]} if facts.get("pubsub_url") else {}),
    }


def env_block(facts: Mapping[str, str]) -> str:
    """Ready-to-paste ``export OPTSYNC_SF_*=…`` lines for a shell."""
    return "\n".join(f"export {k}={json.dumps(v)}" for k, v in settings_env(facts).items())


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM stops the emulator like Ctrl-C does: cleanly, never mid-write."""
    raise KeyboardInterrupt


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
