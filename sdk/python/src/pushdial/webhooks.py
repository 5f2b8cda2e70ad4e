"""Verifying the webhooks pushdial sends.

pushdial signs each delivery per Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256>`, secrets `whsec_…`); `verify` checks one
with the reference implementation (the `standardwebhooks` package):

    from pushdial import webhooks

    event = webhooks.verify(request.body, request.headers, "whsec_…")
    if event["type"] == "call.completed": ...

Pass the body exactly as received (bytes), before any JSON parsing. During a secret's
rotation both secrets sign, and either one verifies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import standardwebhooks

from . import models as m
from ._errors import PushdialError

#: How far a delivery's `webhook-timestamp` may be from now (the reference library's
#: tolerance): older or newer deliveries are refused, so a captured one cannot be replayed.
TOLERANCE_SECONDS = 5 * 60


class WebhookVerificationError(PushdialError):
    """The delivery is not from pushdial with this secret: a missing, malformed or wrong
    signature, or a timestamp outside the tolerance (a replay)."""


def verify(
    payload: bytes | str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    secret: str,
) -> dict[str, Any]:
    """The delivery's JSON payload, once its signature is verified with `secret`.

    Args:
        payload: the request body exactly as received.
        headers: the request's headers (any mapping, case-insensitive, or (name, value) pairs).
        secret: the endpoint's signing secret, `whsec_…`.

    Raises:
        WebhookVerificationError: when the signature does not verify.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    lowered = {str(k).lower(): str(v) for k, v in pairs}
    try:
        webhook = standardwebhooks.Webhook(secret)
        event = webhook.verify(payload, lowered)
    except standardwebhooks.WebhookVerificationError as e:
        raise WebhookVerificationError(f"webhook not verified: {e}") from e
    except Exception as e:  # an empty or undecodable secret, a body that is not JSON
        raise WebhookVerificationError(f"webhook not verified: {e!r}") from e
    if not isinstance(event, dict):
        raise WebhookVerificationError("webhook payload is not a JSON object")
    return event


WebhookEvent = m.CallWebhook | m.DeviceWebhook | m.EndpointDisabledWebhook | m.TestWebhook


def parse(event: Mapping[str, Any]) -> WebhookEvent:
    """A verified payload as its typed model, chosen by its `type` (`call.*`,
    `device.*`, `endpoint.disabled`, `webhook.test`)."""
    kind = str(event.get("type", ""))
    if kind.startswith("call."):
        return m.CallWebhook.model_validate(event)
    if kind.startswith("device."):
        return m.DeviceWebhook.model_validate(event)
    if kind == "endpoint.disabled":
        return m.EndpointDisabledWebhook.model_validate(event)
    if kind == "webhook.test":
        return m.TestWebhook.model_validate(event)
    raise ValueError(f"unknown webhook event type {kind!r}")
