"""Without the npm clients the client tests skip locally but fail in CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.clients import conftest


def test_missing_clients_fail_when_required(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(conftest, "BIN", tmp_path / "nothing")
    monkeypatch.setenv("OPTSYNC_REQUIRE_NODE_CLIENTS", "1")
    with pytest.raises(pytest.fail.Exception, match="OPTSYNC_REQUIRE_NODE_CLIENTS=1"):
        conftest.require_clients()


def test_missing_clients_skip_otherwise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(conftest, "BIN", tmp_path / "nothing")
    monkeypatch.delenv("OPTSYNC_REQUIRE_NODE_CLIENTS", raising=False)
    with pytest.raises(pytest.skip.Exception):
        conftest.require_clients()
