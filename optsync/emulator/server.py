"""Running the emulator: in a background thread of any process, or alone from the CLI.

``run_emulator`` is the in-process API the tests, the demo and the benchmarks use. It
returns only once the server accepts TLS connections (so callers never race the
start-up) and leaving the context stops uvicorn, the Bulk worker and the store cleanly.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import uvicorn

from optsync.emulator.app import create_app
from optsync.emulator.auth import Authority, Credentials
from optsync.emulator.bulk import JobManager
from optsync.emulator.faults import FaultSettings, Governor
from optsync.emulator.org import Org
from optsync.emulator.pubsub.bus import EventBus
from optsync.emulator.pubsub.capture import capture_paused
from optsync.emulator.pubsub.server import PubSubServer, start_pubsub
from optsync.emulator.store import OrgStore
from optsync.emulator.tls import ensure_tls

DEFAULT_API_VERSION = "59.0"
_SEED_OPTED_OUT = 0.1
_SEED_SALES_OPTED_OUT = 0.05


@dataclass(frozen=True)
class EmulatorOptions:
    """How to run one emulated org.

    ``seed`` is a number of records generated into an *empty* org at start (half
    Contacts, half Leads; 10 % email-opted-out, 5 % sales-opted-out); 0 leaves it empty.
    ``cdc`` False starts with no entity selected for Change Data Capture (an org whose
    edition has none); ``pubsub_port`` is the Pub/Sub API's own TLS port (0 = free one).
    ``person_accounts`` starts the org with Person Accounts enabled;
    ``seed_person_accounts`` adds that many person accounts to the seed (needs
    ``person_accounts``) and ``seed_duplicate_fraction`` gives that share of the seeded
    records the address of another seeded record (see ``OrgStore.seed``).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    memory: bool = False
    seed: int = 0
    latency_ms: int = 0
    jitter_ms: int = 0
    fault_rate: float = 0.0
    daily_api_limit: int = 1_000_000
    sales_opt_out: bool = True
    token_lifetime_s: float = 7200
    cdc: bool = True
    pubsub_port: int = 0
    person_accounts: bool = False
    seed_person_accounts: int = 0
    seed_duplicate_fraction: float = 0.0

    def validate(self) -> None:
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if not 0.0 <= self.seed_duplicate_fraction <= 1.0:
            raise ValueError("seed_duplicate_fraction must be between 0 and 1")
        if self.seed_person_accounts and not self.person_accounts:
            raise ValueError("seed_person_accounts needs person_accounts")
        for name in ("seed", "seed_person_accounts", "latency_ms", "jitter_ms", "daily_api_limit"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be at least 0")
        for name in ("port", "pubsub_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise ValueError(f"{name} must be between 0 and 65535")
        if self.token_lifetime_s <= 0:
            raise ValueError("token_lifetime_s must be positive")


@dataclass
class Emulator:
    """A running emulator: where it is, how to log in, and helpers for the control API."""

    instance_url: str
    login_url: str
    ca_bundle: str
    client_id: str
    client_secret: str
    username: str
    password: str
    private_key_file: str
    refresh_token: str
    control_url: str
    pubsub_url: str
    data_dir: Path
    org: Org = field(repr=False)

    def http(self) -> requests.Session:
        """A ``requests`` session trusting the emulator's CA.

        ``trust_env=False`` because ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` in the
        environment would otherwise override ``verify``.
        """
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_bundle
        return session

    def control(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/__emulator__/<path>`` and return the decoded JSON (raises on errors)."""
        with self.http() as s:
            resp = s.request(
                method, f"{self.control_url}/{path.lstrip('/')}", json=body, timeout=300
            )
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def token(self, grant: str = "client_credentials") -> dict[str, Any]:
        """Log in with one of the supported flows and return the token response."""
        form: dict[str, str]
        auth: tuple[str, str] | None = None
        if grant == "client_credentials":
            form = {"grant_type": "client_credentials"}
            auth = (self.client_id, self.client_secret)
        elif grant == "password":
            form = {
                "grant_type": "password",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "username": self.username,
                "password": self.password,
            }
        elif grant == "refresh_token":
            form = {
                "grant_type": "refresh_token",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "refresh_token": self.refresh_token,
            }
        elif grant == "jwt":
            import jwt as pyjwt

            claims = {
                "iss": self.client_id,
                "sub": self.username,
                "aud": self.login_url,
                "exp": int(time.time()) + 180,
            }
            assertion = pyjwt.encode(
                claims, Path(self.private_key_file).read_text(), algorithm="RS256"
            )
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            }
        else:
            raise ValueError(f"unknown grant {grant!r}")
        with self.http() as s:
            resp = s.post(
                f"{self.login_url}/services/oauth2/token", data=form, auth=auth, timeout=30
            )
        resp.raise_for_status()
        return dict(resp.json())

    def salesforce(self, version: str = DEFAULT_API_VERSION) -> Any:
        """A simple-salesforce client logged in with client credentials."""
        from simple_salesforce.api import Salesforce

        tok = self.token()
        return Salesforce(
            instance_url=tok["instance_url"],
            session_id=tok["access_token"],
            session=self.http(),
            version=version,
        )

    def reset(self) -> None:
        self.control("POST", "reset")

    def seed(
        self,
        contacts: int = 0,
        leads: int = 0,
        opted_out_fraction: float = 0.0,
        sales_opted_out_fraction: float = 0.0,
        person_accounts: int = 0,
        duplicate_fraction: float = 0.0,
    ) -> dict[str, Any]:
        return dict(
            self.control(
                "POST",
                "seed",
                {
                    "contacts": contacts,
                    "leads": leads,
                    "opted_out_fraction": opted_out_fraction,
                    "sales_opted_out_fraction": sales_opted_out_fraction,
                    "person_accounts": person_accounts,
                    "duplicate_fraction": duplicate_fraction,
                },
            )
        )

    def settings(self, **changes: Any) -> dict[str, Any]:
        if changes:
            return dict(self.control("PUT", "settings", changes))
        return dict(self.control("GET", "settings"))

    def summary(self) -> dict[str, str]:
        """The connection facts printed by ``optsync emulator`` (and its ``--json``)."""
        return {
            "instance_url": self.instance_url,
            "login_url": self.login_url,
            "ca_bundle": self.ca_bundle,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "username": self.username,
            "password": self.password,
            "private_key_file": self.private_key_file,
            "refresh_token": self.refresh_token,
            "control_url": self.control_url,
            "pubsub_url": self.pubsub_url,
        }


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):  # noqa: S104 - a wildcard bind is reached via loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _wait_for_tls(
    host: str,
    port: int,
    ca_file: str,
    thread: threading.Thread,
    server: uvicorn.Server,
    timeout: float = 30.0,
) -> None:
    ctx = ssl.create_default_context(cafile=ca_file)
    deadline = time.monotonic() + timeout
    connect_host = host.strip("[]")
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the emulator's server thread stopped during start-up")
        if server.started:
            try:
                with (
                    socket.create_connection((connect_host, port), timeout=2) as raw,
                    ctx.wrap_socket(raw, server_hostname=connect_host),
                ):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    raise RuntimeError(f"the emulator did not accept TLS connections within {timeout:.0f} s")


def build_org(options: EmulatorOptions) -> tuple[Org, Path]:
    """Create (or reopen) the org state for ``options``; returns it and the emulator dir."""
    emu_dir = options.data_dir / "emulator"
    emu_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = Credentials.load_or_create(emu_dir)
    store = OrgStore(
        ":memory:" if options.memory else str(emu_dir / "org.sqlite3"),
        sales_opt_out=options.sales_opt_out,
        person_accounts=options.person_accounts,
        username=creds.username,
    )
    governor = Governor(
        FaultSettings(
            latency_ms=options.latency_ms,
            jitter_ms=options.jitter_ms,
            fault_rate=options.fault_rate,
            daily_api_limit=options.daily_api_limit,
        )
    )
    jobs = JobManager(store, governor, emu_dir)
    authority = Authority(creds, token_lifetime_s=options.token_lifetime_s)
    org = Org(store=store, authority=authority, governor=governor, jobs=jobs, credentials=creds)
    org.pubsub = EventBus(store, cdc=options.cdc)
    if (options.seed or options.seed_person_accounts) and store.total_records() == 0:
        contacts = options.seed // 2
        with capture_paused():
            store.seed(
                contacts,
                options.seed - contacts,
                _SEED_OPTED_OUT,
                _SEED_SALES_OPTED_OUT,
                person_accounts=options.seed_person_accounts,
                duplicate_fraction=options.seed_duplicate_fraction,
            )
    return org, emu_dir


@contextmanager
def run_emulator(options: EmulatorOptions) -> Iterator[Emulator]:
    """Start the emulator over TLS in a background thread; stop it when the block ends."""
    options.validate()
    org, emu_dir = build_org(options)
    family = socket.AF_INET6 if ":" in options.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    thread: threading.Thread | None = None
    server: uvicorn.Server | None = None
    pubsub: PubSubServer | None = None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this on Linux; without it Nagle's algorithm holds
        # each response body back until the client's delayed ACK (~40 ms per request).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((options.host, options.port))
        port = sock.getsockname()[1]
        url_host = _url_host(options.host)
        tls = ensure_tls(emu_dir, [options.host, url_host.strip("[]")])
        org.instance_url = org.login_url = f"https://{url_host}:{port}"
        config = uvicorn.Config(
            create_app(org),
            ssl_certfile=str(tls.cert_file),
            ssl_keyfile=str(tls.key_file),
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_keep_alive=120,
            timeout_graceful_shutdown=1,
            backlog=2048,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"emulator-{port}", daemon=True
        )
        thread.start()
        _wait_for_tls(url_host, port, str(tls.ca_bundle), thread, server)
        assert org.pubsub is not None
        pubsub = start_pubsub(org, org.pubsub, options.host, options.pubsub_port, tls)
        creds = org.credentials
        yield Emulator(
            instance_url=org.instance_url,
            login_url=org.login_url,
            ca_bundle=str(tls.ca_bundle),
            client_id=creds.client_id,
            client_secret=creds.client_secret,
            username=creds.username,
            password=creds.password,
            private_key_file=str(creds.private_key_file),
            refresh_token=creds.refresh_token,
            control_url=f"{org.instance_url}/__emulator__",
            pubsub_url=f"https://{url_host}:{pubsub.port}",
            data_dir=options.data_dir,
            org=org,
        )
    finally:
        if server is not None:
            # Idle keep-alive connections of clients still holding sessions must not
            # delay the stop: in-flight requests get the short graceful timeout only.
            server.should_exit = True
            server.force_exit = True
        if thread is not None:
            thread.join(timeout=15)
        if org.pubsub is not None:
            org.pubsub.close()
        if pubsub is not None:
            pubsub.stop()
        sock.close()
        org.jobs.close()
        org.store.close()
