"""Which request asks for the next page, offline: the pages are built here from a list of
ids (newest first), as the server's cursors would cut it. (The end-to-end tests page
through real lists.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from pushdial import SyncPage
from pushdial._core import Operation

IDS = [f"call_{n}" for n in range(9, 0, -1)]  # newest first: call_9 … call_1


def fetch_from(asked: list[dict[str, Any]]):
    """A list endpoint over IDS that honours both cursors at once, as the server does, and
    records what each page asked for."""

    def fetch(op: Operation[Any]) -> Any:
        params = dict(op.params or {})
        asked.append(params)
        limit = params.get("limit", 2)
        rows = IDS
        if params.get("starting_after") is not None:
            rows = rows[rows.index(params["starting_after"]) + 1 :]
        if params.get("ending_before") is not None:
            rows = rows[: rows.index(params["ending_before"])]
            page = rows[-limit:]
            has_more = len(rows) > limit
        else:
            page = rows[:limit]
            has_more = len(rows) > limit
        return SimpleNamespace(data=[SimpleNamespace(id=i) for i in page], has_more=has_more)

    return fetch


def first_page(**params: Any) -> tuple[SyncPage[Any], list[dict[str, Any]]]:
    asked: list[dict[str, Any]] = []
    fetch = fetch_from(asked)
    op: Operation[Any] = Operation("GET", "/v1/calls", params=params)
    return SyncPage(fetch, op, fetch(op)), asked


def test_reading_up_with_ending_before_drops_the_callers_starting_after() -> None:
    # Between call_2 (exclusive) and call_7 (exclusive), read up from call_2, 2 at a time.
    page, asked = first_page(limit=2, starting_after="call_7", ending_before="call_2")
    pages = [[item.id for item in p.data] for p in page.iter_pages()]
    # The first page honours both; every later one moves ending_before alone, up to the top.
    assert pages == [["call_4", "call_3"], ["call_6", "call_5"], ["call_8", "call_7"], ["call_9"]]
    assert all("starting_after" not in params for params in asked[1:])


def test_reading_down_follows_starting_after_alone() -> None:
    page, asked = first_page(limit=3, starting_after="call_9")
    assert [item.id for item in page] == IDS[1:]
    assert [params.get("starting_after") for params in asked] == ["call_9", "call_6", "call_3"]
    assert all(params.get("ending_before") is None for params in asked)
