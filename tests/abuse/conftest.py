"""Fixtures for the abuse tests: the app per database and signed-in admin/member clients
(the same fixtures as tests/integration), and a recording HTTPS listener on loopback."""

from __future__ import annotations

import base64
import http.server
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.admin.conftest import admin_client, member_client, users  # noqa: F401
from tests.integration.conftest import app, ctx  # noqa: F401
from tests.integration.web.conftest import admin_headers, member_headers  # noqa: F401


@dataclass
class Listener:
    """A tiny HTTPS server on 127.0.0.1 that records every request it receives."""

    url: str
    received: list[bytes] = field(default_factory=list)

    def everything(self) -> bytes:
        return b"\n".join(self.received)


@pytest.fixture
def listener(emu) -> Iterator[Listener]:
    """Serves with the emulator's certificate (covers 127.0.0.1, signed by its CA), so a
    client trusting the emulator's CA bundle would really send its request here."""
    tls_dir = Path(emu.ca_bundle).parent
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_dir / "server.pem", tls_dir / "server-key.pem")
    record: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = self.requestline.encode() + b"\n" + bytes(self.headers) + body
            scheme, _, credentials = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() == "basic":  # the client secret travels base64-encoded
                seen += b"\n" + base64.b64decode(credentials + "==")
            record.append(urllib.parse.unquote_to_bytes(seen))
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            payload = b'{"error": "invalid_grant", "error_description": "listener"}'
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _any

        def log_message(self, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Listener(f"https://127.0.0.1:{server.server_address[1]}", record)
    finally:
        server.shutdown()
        server.server_close()
