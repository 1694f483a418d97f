"""Serving the Pub/Sub API: a gRPC server over TLS on its own port.

It uses the emulator's own CA and server certificate, like Salesforce's
``api.pubsub.salesforce.com:7443`` endpoint sits apart from the instance URL. Subscribe
streams hold a worker thread each, hence the generous pool.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc

from optsync.emulator.pubsub.bus import EventBus
from optsync.emulator.pubsub.service import PubSubService
from optsync.emulator.tls import TlsFiles
from optsync.pubsub_api import rpc

MAX_STREAMS = 64


@dataclass
class PubSubServer:
    server: grpc.Server
    port: int

    def stop(self, grace: float = 1.0) -> None:
        self.server.stop(grace).wait(grace + 5)


def start_pubsub(org: Any, bus: EventBus, host: str, port: int, tls: TlsFiles) -> PubSubServer:
    """Start serving ``eventbus.v1.PubSub`` on ``host:port`` (0 picks a free port)."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=MAX_STREAMS, thread_name_prefix="pubsub"),
        options=[("grpc.so_reuseport", 0)],
    )
    rpc.add_PubSubServicer_to_server(PubSubService(org, bus), server)  # type: ignore[no-untyped-call]
    credentials = grpc.ssl_server_credentials(
        [(tls.key_file.read_bytes(), tls.cert_file.read_bytes())]
    )
    bound = server.add_secure_port(f"{host}:{port}", credentials)
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port} for the Pub/Sub API")
    server.start()
    return PubSubServer(server, bound)
