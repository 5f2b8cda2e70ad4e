"""The package is typed: it passes `mypy --strict` (with the generated models)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent


def test_the_package_passes_mypy_strict() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", "/dev/null", "src/pushdial"],
        cwd=SDK,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
