"""Regenerate the committed stubs from ``pubsub_api.proto`` (``make proto``).

``python -m optsync.pubsub_api.generate [OUT_DIR]`` writes ``pubsub_api_pb2.py``,
``pubsub_api_pb2.pyi`` and ``pubsub_api_pb2_grpc.py`` under ``OUT_DIR/optsync/pubsub_api/``
(``OUT_DIR`` defaults to the source tree itself). Needs the dev dependency
``grpcio-tools``; the test of the stubs runs it into a temporary directory and compares.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_ROOT = PACKAGE_DIR.parent.parent  # the directory holding the optsync package
PROTO = "optsync/pubsub_api/pubsub_api.proto"
GENERATED = ("pubsub_api_pb2.py", "pubsub_api_pb2.pyi", "pubsub_api_pb2_grpc.py")


def generate(out_dir: Path = SOURCE_ROOT) -> list[Path]:
    """Run protoc (from grpcio-tools) and return the generated files."""
    from grpc_tools import protoc  # dev dependency: only needed to regenerate

    (out_dir / "optsync" / "pubsub_api").mkdir(parents=True, exist_ok=True)
    # The include root is the source tree, so the stubs import each other as
    # ``optsync.pubsub_api.…`` rather than as top-level modules.
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{SOURCE_ROOT}",
            f"--python_out={out_dir}",
            f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}",
            str(SOURCE_ROOT / PROTO),
        ]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code}")
    return [out_dir / "optsync" / "pubsub_api" / name for name in GENERATED]


if __name__ == "__main__":
    for path in generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE_ROOT):
        print(path)
