"""The committed Pub/Sub API stubs are exactly what ``make proto`` generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from optsync.pubsub_api import generate, pb

pytest.importorskip("grpc_tools")


def test_the_committed_stubs_match_the_proto(tmp_path: Path):
    fresh = generate.generate(tmp_path)
    stale = [
        path.name
        for path in fresh
        if path.read_bytes() != (generate.PACKAGE_DIR / path.name).read_bytes()
    ]
    assert stale == [], f"run `make proto` and commit: {stale}"


def test_the_field_numbers_are_the_public_interfaces():
    fields = {f.name: f.number for f in pb.FetchRequest.DESCRIPTOR.fields}
    assert fields == {
        "topic_name": 1,
        "replay_preset": 2,
        "replay_id": 3,
        "num_requested": 4,
        "auth_refresh": 5,
    }
    fields = {f.name: f.number for f in pb.FetchResponse.DESCRIPTOR.fields}
    assert fields == {"events": 1, "latest_replay_id": 2, "rpc_id": 3, "pending_num_requested": 4}
    assert pb.ReplayPreset.Value("CUSTOM") == 2
    service = pb.DESCRIPTOR.services_by_name["PubSub"]
    assert service.full_name == "eventbus.v1.PubSub"
    assert set(service.methods_by_name) == {
        "Subscribe",
        "ManagedSubscribe",
        "GetTopic",
        "GetSchema",
        "Publish",
        "PublishStream",
    }
