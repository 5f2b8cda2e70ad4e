"""Every API request the resources make, described once for both clients: the path,
the query or body from the arguments given, and the model the answer decodes to."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from . import models as m
from ._core import NOT_GIVEN, Operation, drop_unset, new_idempotency_key


def _id(value: str) -> str:
    return quote(value, safe="")


def _page(limit: int | None, starting_after: str | None, ending_before: str | None) -> dict[str, Any]:
    return {"limit": limit, "starting_after": starting_after, "ending_before": ending_before}


# --- calls -------------------------------------------------------------------------


def create_call(
    *,
    to: str,
    agent_id: str | None,
    device_id: str | None,
    confirm: str | None,
    expires_in: int | None,
    metadata: dict[str, str] | None,
    idempotency_key: str | None,
) -> Operation[m.Call]:
    body = drop_unset(
        {
            "to": to,
            "agent_id": agent_id,
            "device_id": device_id,
            "confirm": confirm,
            "expires_in": expires_in,
            "metadata": metadata,
        }
    )
    return Operation(
        "POST",
        "/v1/calls",
        m.Call,
        json=body,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def list_calls(
    *,
    status: str | None,
    agent_id: str | None,
    created_gte: datetime | None,
    created_lt: datetime | None,
    limit: int | None,
    starting_after: str | None,
    ending_before: str | None,
) -> Operation[m.ListCall]:
    params = {
        "status": status,
        "agent_id": agent_id,
        "created_gte": created_gte,
        "created_lt": created_lt,
        **_page(limit, starting_after, ending_before),
    }
    return Operation("GET", "/v1/calls", m.ListCall, params=params)


def get_call(call_id: str) -> Operation[m.Call]:
    return Operation("GET", f"/v1/calls/{_id(call_id)}", m.Call)


def cancel_call(call_id: str) -> Operation[m.Call]:
    return Operation("POST", f"/v1/calls/{_id(call_id)}/cancel", m.Call)


def list_call_events(call_id: str) -> Operation[m.ListCallEvent]:
    return Operation("GET", f"/v1/calls/{_id(call_id)}/events", m.ListCallEvent)


# --- agents, pairing codes, devices ----------------------------------------------------


def create_agent(*, name: str, email: str | None, idempotency_key: str | None) -> Operation[m.Agent]:
    return Operation(
        "POST",
        "/v1/agents",
        m.Agent,
        json=drop_unset({"name": name, "email": email}),
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


def list_agents(
    *, limit: int | None, starting_after: str | None, ending_before: str | None
) -> Operation[m.ListAgent]:
    return Operation("GET", "/v1/agents", m.ListAgent, params=_page(limit, starting_after, ending_before))


def get_agent(agent_id: str) -> Operation[m.Agent]:
    return Operation("GET", f"/v1/agents/{_id(agent_id)}", m.Agent)


def create_pairing_code(*, agent_id: str | None) -> Operation[m.PairingCode]:
    return Operation("POST", "/v1/pairing_codes", m.PairingCode, json=drop_unset({"agent_id": agent_id}))


def list_devices(
    *, agent_id: str | None, limit: int | None, starting_after: str | None, ending_before: str | None
) -> Operation[m.ListDevice]:
    params = {"agent_id": agent_id, **_page(limit, starting_after, ending_before)}
    return Operation("GET", "/v1/devices", m.ListDevice, params=params)


def get_device(device_id: str) -> Operation[m.Device]:
    return Operation("GET", f"/v1/devices/{_id(device_id)}", m.Device)


def revoke_device(device_id: str) -> Operation[m.Device]:
    return Operation("DELETE", f"/v1/devices/{_id(device_id)}", m.Device)


# --- webhook endpoints and events ---------------------------------------------------------


def create_webhook_endpoint(
    *,
    url: str,
    description: str | None,
    event_types: list[str] | None,
    enabled: bool | None,
    rate_limit_per_s: int | None,
) -> Operation[m.WebhookEndpoint]:
    body = drop_unset(
        {
            "url": url,
            "description": description,
            "event_types": event_types,
            "enabled": enabled,
            "rate_limit_per_s": rate_limit_per_s,
        }
    )
    return Operation("POST", "/v1/webhook_endpoints", m.WebhookEndpoint, json=body)


def list_webhook_endpoints(
    *, limit: int | None, starting_after: str | None, ending_before: str | None
) -> Operation[m.ListWebhookEndpoint]:
    return Operation(
        "GET", "/v1/webhook_endpoints", m.ListWebhookEndpoint, params=_page(limit, starting_after, ending_before)
    )


def get_webhook_endpoint(endpoint_id: str) -> Operation[m.WebhookEndpoint]:
    return Operation("GET", f"/v1/webhook_endpoints/{_id(endpoint_id)}", m.WebhookEndpoint)


def update_webhook_endpoint(endpoint_id: str, **fields: Any) -> Operation[m.WebhookEndpoint]:
    # `None` is sent as `null` (it clears `description` or `rate_limit_per_s`);
    # NOT_GIVEN leaves a field as it is.
    return Operation(
        "PATCH",
        f"/v1/webhook_endpoints/{_id(endpoint_id)}",
        m.WebhookEndpoint,
        json=drop_unset(fields, keep_none=True),
    )


def delete_webhook_endpoint(endpoint_id: str) -> Operation[m.WebhookEndpoint]:
    return Operation("DELETE", f"/v1/webhook_endpoints/{_id(endpoint_id)}", m.WebhookEndpoint)


def rotate_webhook_secret(endpoint_id: str, *, grace_period_s: int | None) -> Operation[m.WebhookEndpoint]:
    return Operation(
        "POST",
        f"/v1/webhook_endpoints/{_id(endpoint_id)}/rotate_secret",
        m.WebhookEndpoint,
        json=drop_unset({"grace_period_s": grace_period_s}),
    )


def test_webhook_endpoint(endpoint_id: str) -> Operation[m.Queued]:
    return Operation("POST", f"/v1/webhook_endpoints/{_id(endpoint_id)}/test", m.Queued)


def list_webhook_attempts(
    endpoint_id: str, *, event_id: str | None, limit: int | None, starting_after: str | None
) -> Operation[m.ListWebhookAttempt]:
    params = {"event_id": event_id, "limit": limit, "starting_after": starting_after}
    return Operation(
        "GET", f"/v1/webhook_endpoints/{_id(endpoint_id)}/attempts", m.ListWebhookAttempt, params=params
    )


def list_events(
    *, type: str | None, limit: int | None, starting_after: str | None, ending_before: str | None
) -> Operation[m.ListEvent]:
    params = {"type": type, **_page(limit, starting_after, ending_before)}
    return Operation("GET", "/v1/events", m.ListEvent, params=params)


__all__ = ["NOT_GIVEN"]
