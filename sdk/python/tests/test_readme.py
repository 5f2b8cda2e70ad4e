"""The README's quick start works as written (with this server's URL and key)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def quick_start() -> str:
    text = README.read_text()
    section = text.split("## Quick start", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README has a quick start"
    return match.group(1)


def test_the_quick_start_is_five_lines() -> None:
    assert len(quick_start().strip().splitlines()) == 5


def test_the_quick_start_places_a_call(server) -> None:
    code = quick_start()
    assert '"pd_sk_…"' in code and '"http://127.0.0.1:8080"' in code
    code = code.replace('"pd_sk_…"', repr(server.secret_key)).replace('"http://127.0.0.1:8080"', repr(server.url))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    call_id, status, *_ = out.getvalue().split()
    assert call_id.startswith("call_") and status in ("queued", "offered")
