"""Calls through the synchronous client, against the real server: create (idempotent),
get, events, cancel, and automatic pagination."""

from __future__ import annotations

import uuid

import httpx
import pytest

from conftest import wait_for_status
from pushdial import ConflictError, Pushdial, SyncPage


def test_an_auto_call_is_dialed_and_its_timeline_is_read(client: Pushdial, server, number) -> None:
    call = client.calls.create(to=number(), agent_id=server.agent_id, confirm="auto", metadata={"crm": "42"})
    assert call.id.startswith("call_")
    assert call.status in ("queued", "offered")
    assert call.metadata == {"crm": "42"}

    done = wait_for_status(client, call.id, "completed")
    assert done.duration_s is not None
    trail = [e.status for e in client.calls.events(call.id) if e.kind == "status"]
    assert trail[0] == "queued" and trail[-1] == "completed"
    for step in ("offered", "delivered", "accepted", "dialing"):
        assert step in trail, trail


def test_creates_with_one_idempotency_key_place_one_call(client: Pushdial, server, number) -> None:
    key = f"order-{uuid.uuid4()}"
    to = number()
    first = client.calls.create(to=to, agent_id=server.agent_id, confirm="auto", idempotency_key=key)
    again = client.calls.create(to=to, agent_id=server.agent_id, confirm="auto", idempotency_key=key)
    assert again.id == first.id
    assert [c.id for c in client.calls.list(limit=100) if c.to == to] == [first.id]


def test_a_create_without_a_key_gets_a_fresh_one_each_time(client: Pushdial, server, number) -> None:
    seen: list[str] = []
    with Pushdial(
        server.secret_key,
        base_url=server.url,
        http_client=httpx.Client(
            event_hooks={"request": [lambda r: seen.append(r.headers.get("idempotency-key", ""))]}
        ),
    ) as c:
        to = number()
        a = c.calls.create(to=to, agent_id=server.agent_id, confirm="auto")
        b = c.calls.create(to=to, agent_id=server.agent_id, confirm="auto")
    assert a.id != b.id, "two creates are two calls"
    assert len(seen) == 2 and all(seen) and seen[0] != seen[1]


def test_a_call_waiting_for_its_person_is_canceled_and_a_dialed_one_is_not(
    client: Pushdial, server, number
) -> None:
    call = client.calls.create(to=number(), agent_id=server.agent_id)  # `prompt`: the phone asks
    wait_for_status(client, call.id, "delivered")
    canceled = client.calls.cancel(call.id)
    assert canceled.status == "canceled"
    assert client.calls.get(call.id).status == "canceled"
    assert [e.status for e in client.calls.events(call.id)][-1] == "canceled"

    dialed = client.calls.create(to=number(), agent_id=server.agent_id, confirm="auto")
    wait_for_status(client, dialed.id, "completed")
    with pytest.raises(ConflictError) as refused:
        client.calls.cancel(dialed.id)
    assert refused.value.status == 409
    assert refused.value.code == "call_not_cancelable"
    assert client.calls.get(dialed.id).status == "completed"


def test_a_list_pages_through_every_call_newest_first(client: Pushdial, server, number) -> None:
    batch = str(uuid.uuid4())
    ids = [
        client.calls.create(to=number(), agent_id=server.agent_id, metadata={"batch": batch}).id
        for _ in range(5)
    ]
    ids.reverse()  # newest first

    first = client.calls.list(agent_id=server.agent_id, limit=2)
    assert isinstance(first, SyncPage)
    assert len(first.data) == 2 and first.has_more
    pages = list(first.iter_pages())
    assert len(pages) >= 3, "five calls (and more) at two a page"
    assert all(len(p.data) <= 2 for p in pages) and not pages[-1].has_more

    # Iterating the first page goes on through every later page.
    assert [c.id for c in client.calls.list(limit=2) if c.metadata.get("batch") == batch] == ids
    second = first.next_page()
    assert second is not None and second.data[0].id != first.data[-1].id

    # Filters and a cursor given by hand hold on every page.
    for call_id in ids:
        wait_for_status(client, call_id, "delivered")
    after = [c.id for c in client.calls.list(status="delivered", starting_after=ids[1], limit=1)]
    assert ids[0] not in after and ids[1] not in after
    assert set(ids[2:]) <= set(after)

    for call_id in ids:
        client.calls.cancel(call_id)
    assert all(c.status == "canceled" for c in client.calls.list(limit=2) if c.id in ids)
