"""`AsyncPushdial`: the asynchronous client (httpx.AsyncClient underneath); the same
resources and arguments as `Pushdial`, each call awaited."""

from __future__ import annotations

import builtins
import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from . import _operations as ops
from . import models as m
from ._core import (
    DEFAULT_MAX_RETRIES,
    NOT_GIVEN,
    ClientCore,
    NotGiven,
    Operation,
    RetryPolicy,
)
from ._pagination import AsyncPaginator

T = TypeVar("T")


class AsyncPushdial:
    """Asynchronous client of the pushdial public API.

        client = AsyncPushdial("pd_sk_…", base_url="https://pushdial.example.com")
        call = await client.calls.create(to="+14155550123", agent_id="agt_…")

    Args:
        api_key: a secret key (`pd_sk_…`); defaults to `$PUSHDIAL_API_KEY`.
        base_url: the deployment's URL; defaults to `$PUSHDIAL_BASE_URL`, else
            `http://127.0.0.1:8080` (what `scripts/run` serves).
        timeout: seconds per attempt (or an `httpx.Timeout`), 30 by default.
        max_retries: how often a refused (429, 503) or unanswered request that is safe to
            send again is retried, with backoff (2 by default; 0 turns retries off).
        retry_policy: the whole backoff policy, when `max_retries` is not enough.
        http_client: an `httpx.AsyncClient` of your own (proxies, event hooks, transports);
            it is not closed by `close()`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_policy: RetryPolicy | None = None,
        default_headers: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._core = ClientCore(
            api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry_policy=retry_policy,
            default_headers=default_headers,
        )
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self.calls = Calls(self)
        self.agents = Agents(self)
        self.pairing_codes = PairingCodes(self)
        self.devices = Devices(self)
        self.webhook_endpoints = WebhookEndpoints(self)
        self.events = Events(self)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def _send(self, op: Operation[T]) -> T:
        attempt = 0
        while True:
            request = self._core.build_request(self._http, op)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as e:
                delay = self._core.retry_delay(op, attempt, error=e)
                if delay is None:
                    raise self._core.connection_error(e) from e
            else:
                delay = self._core.retry_delay(op, attempt, response=response)
                if delay is None:
                    return self._core.answer(op, response)
                await response.aclose()
            await asyncio.sleep(delay)
            attempt += 1

    def _page(self, op: Operation[Any]) -> AsyncPaginator[Any]:
        return AsyncPaginator(self._send, op)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
        cast_to: type[T] | None = None,
    ) -> Any:
        """Any other endpoint of the API (`/v1/...`), with the same authentication,
        retries and errors; the answer's JSON, or `cast_to` (a model from
        `pushdial.models`) made from it."""
        return await self._send(
            Operation(method.upper(), path, cast_to, params=params, json=json, idempotency_key=idempotency_key)
        )

    async def close(self) -> None:
        """Closes the connections (unless the `httpx.AsyncClient` was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncPushdial:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class _Resource:
    def __init__(self, client: AsyncPushdial) -> None:
        self._client = client


class Calls(_Resource):
    """`/v1/calls`: place calls through an agent's phone, follow and cancel them."""

    async def create(
        self,
        *,
        to: str,
        agent_id: str | None = None,
        device_id: str | None = None,
        confirm: str | None = None,
        expires_in: int | None = None,
        metadata: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> m.Call:
        """Places a call to `to` (E.164) through `agent_id`'s (or `device_id`'s) phone.

        The request carries an `Idempotency-Key` (a new one unless given) that its
        retries reuse, so a call is placed once however often the request is sent.
        Raises `NoDeviceReachableError` when no phone can take it (nothing is written).
        """
        return await self._client._send(
            ops.create_call(
                to=to,
                agent_id=agent_id,
                device_id=device_id,
                confirm=confirm,
                expires_in=expires_in,
                metadata=metadata,
                idempotency_key=idempotency_key,
            )
        )

    def list(
        self,
        *,
        status: str | None = None,
        agent_id: str | None = None,
        created_gte: datetime | None = None,
        created_lt: datetime | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPaginator[m.Call]:
        """Calls, newest first: `await` it for the first page, `async for` over it for
        every call of every page."""
        return self._client._page(
            ops.list_calls(
                status=status,
                agent_id=agent_id,
                created_gte=created_gte,
                created_lt=created_lt,
                limit=limit,
                starting_after=starting_after,
                ending_before=ending_before,
            )
        )

    async def get(self, call_id: str) -> m.Call:
        return await self._client._send(ops.get_call(call_id))

    async def cancel(self, call_id: str) -> m.Call:
        """Cancels a call until its phone starts dialing (`ConflictError` after)."""
        return await self._client._send(ops.cancel_call(call_id))

    async def events(self, call_id: str) -> builtins.list[m.CallEvent]:
        """The call's timeline, oldest first."""
        return list((await self._client._send(ops.list_call_events(call_id))).data)


class Agents(_Resource):
    """`/v1/agents`: the people who take calls on their phones."""

    async def create(self, *, name: str, email: str | None = None, idempotency_key: str | None = None) -> m.Agent:
        return await self._client._send(ops.create_agent(name=name, email=email, idempotency_key=idempotency_key))

    def list(
        self, *, limit: int | None = None, starting_after: str | None = None, ending_before: str | None = None
    ) -> AsyncPaginator[m.Agent]:
        return self._client._page(
            ops.list_agents(limit=limit, starting_after=starting_after, ending_before=ending_before)
        )

    async def get(self, agent_id: str) -> m.Agent:
        return await self._client._send(ops.get_agent(agent_id))


class PairingCodes(_Resource):
    """`/v1/pairing_codes`: one-time codes that pair a phone to an agent."""

    async def create(self, *, agent_id: str | None = None) -> m.PairingCode:
        return await self._client._send(ops.create_pairing_code(agent_id=agent_id))


class Devices(_Resource):
    """`/v1/devices`: the paired phones."""

    def list(
        self,
        *,
        agent_id: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPaginator[m.Device]:
        return self._client._page(
            ops.list_devices(agent_id=agent_id, limit=limit, starting_after=starting_after, ending_before=ending_before)
        )

    async def get(self, device_id: str) -> m.Device:
        return await self._client._send(ops.get_device(device_id))

    async def revoke(self, device_id: str) -> m.Device:
        return await self._client._send(ops.revoke_device(device_id))


class WebhookEndpoints(_Resource):
    """`/v1/webhook_endpoints`: where events are delivered, signed per Standard Webhooks."""

    async def create(
        self,
        *,
        url: str,
        description: str | None = None,
        event_types: builtins.list[str] | None = None,
        enabled: bool | None = None,
        rate_limit_per_s: int | None = None,
    ) -> m.WebhookEndpoint:
        """Creates an endpoint; the answer's `secret` (`whsec_…`) is shown this once."""
        return await self._client._send(
            ops.create_webhook_endpoint(
                url=url,
                description=description,
                event_types=event_types,
                enabled=enabled,
                rate_limit_per_s=rate_limit_per_s,
            )
        )

    def list(
        self, *, limit: int | None = None, starting_after: str | None = None, ending_before: str | None = None
    ) -> AsyncPaginator[m.WebhookEndpoint]:
        return self._client._page(
            ops.list_webhook_endpoints(limit=limit, starting_after=starting_after, ending_before=ending_before)
        )

    async def get(self, endpoint_id: str) -> m.WebhookEndpoint:
        return await self._client._send(ops.get_webhook_endpoint(endpoint_id))

    async def update(
        self,
        endpoint_id: str,
        *,
        url: str | NotGiven = NOT_GIVEN,
        description: str | None | NotGiven = NOT_GIVEN,
        event_types: builtins.list[str] | NotGiven = NOT_GIVEN,
        enabled: bool | NotGiven = NOT_GIVEN,
        rate_limit_per_s: int | None | NotGiven = NOT_GIVEN,
    ) -> m.WebhookEndpoint:
        """Changes the fields given; `None` clears `description` or `rate_limit_per_s`."""
        return await self._client._send(
            ops.update_webhook_endpoint(
                endpoint_id,
                url=url,
                description=description,
                event_types=event_types,
                enabled=enabled,
                rate_limit_per_s=rate_limit_per_s,
            )
        )

    async def delete(self, endpoint_id: str) -> m.WebhookEndpoint:
        return await self._client._send(ops.delete_webhook_endpoint(endpoint_id))

    async def rotate_secret(self, endpoint_id: str, *, grace_period_s: int | None = None) -> m.WebhookEndpoint:
        """A new secret (in the answer, this once); the old one keeps signing for the grace period."""
        return await self._client._send(ops.rotate_webhook_secret(endpoint_id, grace_period_s=grace_period_s))

    async def test(self, endpoint_id: str) -> m.Queued:
        """Sends a `webhook.test` event to the endpoint (in the background)."""
        return await self._client._send(ops.test_webhook_endpoint(endpoint_id))

    def attempts(
        self,
        endpoint_id: str,
        *,
        event_id: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
    ) -> AsyncPaginator[m.WebhookAttempt]:
        return self._client._page(
            ops.list_webhook_attempts(endpoint_id, event_id=event_id, limit=limit, starting_after=starting_after)
        )


class Events(_Resource):
    """`/v1/events`: the organization's event log, as delivered to webhooks."""

    def list(
        self,
        *,
        type: str | None = None,
        limit: int | None = None,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> AsyncPaginator[m.Event]:
        return self._client._page(
            ops.list_events(type=type, limit=limit, starting_after=starting_after, ending_before=ending_before)
        )
