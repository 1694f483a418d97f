"""The emulator stands alone: it imports nothing of optsync outside ``optsync.emulator``
(but the shared wire-protocol definition ``optsync.pubsub_api``) and does not know
optsync's setting names, so any Salesforce client can be pointed at it and it can catch
an id bug in optsync instead of sharing it."""

from __future__ import annotations

import ast
from pathlib import Path

import optsync.emulator

PACKAGE = Path(optsync.emulator.__file__).parent
# What the emulator may import of optsync: itself, and the Pub/Sub API's .proto stubs
# (a protocol definition that the emulator's server and the product's subscriber share).
ALLOWED = ("optsync.emulator", "optsync.pubsub_api")


def _modules() -> list[Path]:
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10, files  # the walk found the package
    return files


def _imported(path: Path) -> list[str]:
    """Every absolute module name ``path`` imports (relative imports stay inside)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _outside(name: str) -> bool:
    if name != "optsync" and not name.startswith("optsync."):
        return False
    return not any(name == a or name.startswith(a + ".") for a in ALLOWED)


def test_the_emulator_imports_nothing_of_optsync_outside_itself():
    outside = [
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in _modules()
        for name in _imported(path)
        if _outside(name)
    ]
    assert outside == []


def test_only_the_wire_protocol_is_allowed_from_outside():
    assert _outside("optsync.settings")
    assert _outside("optsync")
    assert _outside("optsync.pubsub_apix")
    assert not _outside("optsync.pubsub_api.pubsub_api_pb2")
    assert not _outside("optsync.emulator.pubsub.service")


def test_the_shared_wire_protocol_imports_nothing_of_optsync():
    package = PACKAGE.parent / "pubsub_api"
    imported = [
        f"{path.name}: {name}"
        for path in sorted(package.glob("*.py"))
        for name in _imported(path)
        if (name == "optsync" or name.startswith("optsync."))
        and not name.startswith("optsync.pubsub_api")
    ]
    assert imported == []


def test_the_emulator_does_not_know_optsyncs_setting_names():
    knowing = [str(p.relative_to(PACKAGE)) for p in _modules() if "OPTSYNC_" in p.read_text()]
    assert knowing == []
