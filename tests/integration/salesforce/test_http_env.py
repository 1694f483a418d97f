"""Trusting the configured CA whatever the environment says, and honouring env proxies."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest
import requests

from optsync.emulator import Emulator
from optsync.salesforce.gateway import SalesforceGateway

from .conftest import config_for

pytestmark = pytest.mark.emulator


def _unrelated_bundle() -> str:
    path = Path(certifi.where())
    assert path.is_file()
    return str(path)


def test_requests_ca_bundle_does_not_override_the_configured_ca(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", _unrelated_bundle())
    monkeypatch.setenv("CURL_CA_BUNDLE", _unrelated_bundle())
    monkeypatch.setenv("SSL_CERT_FILE", _unrelated_bundle())
    # Plain requests with the same session.verify fails: the environment wins there.
    plain = requests.Session()
    plain.verify = emu.ca_bundle
    with pytest.raises(requests.exceptions.SSLError):
        plain.get(emu.instance_url + "/services/data/", timeout=10)
    with SalesforceGateway(config_for(emu)) as gw:
        assert "DailyApiRequests" in gw.limits()


class _ConnectProxy(socketserver.ThreadingTCPServer):
    """A minimal HTTP CONNECT proxy that records the tunnels it opened."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tunnels: list[str] = []


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        client: socket.socket = self.request
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode()
        method, target, _ = line.split(" ", 2)
        if method != "CONNECT":
            client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        assert isinstance(self.server, _ConnectProxy)
        self.server.tunnels.append(target)
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)), timeout=10)
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        sockets = [client, upstream]
        try:
            while True:
                readable, _, _ = select.select(sockets, [], [], 10)
                if not readable:
                    return
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        finally:
            upstream.close()


@pytest.fixture
def proxy() -> Iterator[_ConnectProxy]:
    server = _ConnectProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_https_proxy_from_the_environment_is_used(
    emu: Emulator, proxy: _ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = proxy.server_address[:2]
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://{host}:{port}")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", _unrelated_bundle())
    with SalesforceGateway(config_for(emu)) as gw:
        gw.limits()
    emu_target = emu.instance_url.removeprefix("https://")
    assert proxy.tunnels and set(proxy.tunnels) == {emu_target}


def test_no_proxy_from_the_environment_is_honoured(
    emu: Emulator, proxy: _ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = proxy.server_address[:2]
    monkeypatch.setenv("HTTPS_PROXY", f"http://{host}:{port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with SalesforceGateway(config_for(emu)) as gw:
        gw.limits()
    assert proxy.tunnels == []
