"""Installing optsync prints no deprecation warnings, and its licence is stated once."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[3]


def test_building_the_metadata_warns_of_nothing(tmp_path):
    """The metadata step of every ``pip install``: setuptools warned three times about
    the ``project.license`` table; the SPDX string and a license file say it plainly."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "optsync").mkdir()
    (tmp_path / "optsync" / "__init__.py").write_text("")
    out = tmp_path / "meta"
    out.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, setuptools.build_meta as b; "
            "print(b.prepare_metadata_for_build_wheel(sys.argv[1]))",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Deprecat" not in done.stderr + done.stdout, done.stderr
    metadata = next(out.glob("*.dist-info")) / "METADATA"
    text = metadata.read_text()
    assert "License-Expression: Apache-2.0" in text
    assert "License-File: LICENSE" in text
