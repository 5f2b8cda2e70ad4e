"""The committed models are what the generator makes of the committed OpenAPI document."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SDK = Path(__file__).resolve().parent.parent


def test_generated_models_match_the_openapi_document() -> None:
    result = subprocess.run(
        [sys.executable, str(SDK / "scripts" / "generate"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (
        "sdk/python/src/pushdial/models.py is stale: run sdk/python/scripts/generate\n"
        + result.stdout
        + result.stderr
    )
