"""The asynchronous client against the real server: the same resources, awaited."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import unknown_id
from pushdial import AsyncPage, AsyncPushdial, NotFoundError


async def _wait_for_status(client: AsyncPushdial, call_id: str, status: str) -> None:
    for _ in range(200):
        if (await client.calls.get(call_id)).status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} never reached {status}")


def test_async_calls_are_placed_listed_and_canceled(server, number) -> None:
    async def scenario() -> None:
        async with AsyncPushdial(server.secret_key, base_url=server.url) as client:
            batch = str(uuid.uuid4())
            placed = await asyncio.gather(
                *[
                    client.calls.create(to=number(), agent_id=server.agent_id, metadata={"batch": batch})
                    for _ in range(3)
                ]
            )
            ids = {c.id for c in placed}
            assert len(ids) == 3

            first = await client.calls.list(limit=2)
            assert isinstance(first, AsyncPage) and len(first.data) == 2 and first.has_more
            second = await first.next_page()
            assert second is not None and not {c.id for c in first.data} & {c.id for c in second.data}
            listed = {c.id async for c in client.calls.list(limit=2) if c.metadata.get("batch") == batch}
            assert listed == ids

            for call in placed:
                await _wait_for_status(client, call.id, "delivered")
                assert (await client.calls.cancel(call.id)).status == "canceled"

            done = await client.calls.create(to=number(), agent_id=server.agent_id, confirm="auto")
            await _wait_for_status(client, done.id, "completed")
            trail = [e.status for e in await client.calls.events(done.id)]
            assert "completed" in trail

            agent = await client.agents.get(server.agent_id)
            assert agent.reachable
            devices = [d async for d in client.devices.list(agent_id=server.agent_id)]
            assert devices and devices[0].agent_id == server.agent_id

            with pytest.raises(NotFoundError):
                await client.agents.get(unknown_id(server.agent_id))

    asyncio.run(scenario())
