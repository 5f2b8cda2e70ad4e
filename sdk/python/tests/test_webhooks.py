"""Webhook endpoints through the SDK, and deliveries of the real server verified with
`pushdial.webhooks.verify` by a receiver on loopback."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pushdial import NOT_GIVEN, NotFoundError, Pushdial, models, webhooks
from pushdial.webhooks import WebhookVerificationError


class Receiver:
    """An HTTP server that keeps each POST's headers and body."""

    def __init__(self) -> None:
        deliveries: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                deliveries.put((dict(self.headers.items()), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.deliveries = deliveries
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def next_of_type(self, kind: str, timeout: float = 15.0) -> tuple[dict[str, str], bytes]:
        while True:
            headers, body = self.deliveries.get(timeout=timeout)
            if json.loads(body).get("type") == kind:
                return headers, body


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_a_test_delivery_verifies_with_the_endpoint_secret_only(client: Pushdial, receiver: Receiver) -> None:
    endpoint = client.webhook_endpoints.create(url=receiver.url, description="sdk test")
    assert endpoint.secret and endpoint.secret.startswith("whsec_")
    client.webhook_endpoints.test(endpoint.id)
    headers, body = receiver.next_of_type("webhook.test")

    event = webhooks.verify(body, headers, endpoint.secret)
    assert event["type"] == "webhook.test"
    assert event["id"] == headers.get("webhook-id") or event["id"] == headers.get("Webhook-Id")
    typed = webhooks.parse(event)
    assert isinstance(typed, models.TestWebhook) and typed.data.endpoint_id == endpoint.id

    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body.replace(b"webhook.test", b"webhook.tset"), headers, endpoint.secret)
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, headers, "whsec_" + "A" * 43)
    stale = {**{k.lower(): v for k, v in headers.items()}, "webhook-timestamp": "1000000000"}
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, stale, endpoint.secret)
    unsigned = {k: v for k, v in headers.items() if k.lower() != "webhook-signature"}
    with pytest.raises(WebhookVerificationError):
        webhooks.verify(body, unsigned, endpoint.secret)
    client.webhook_endpoints.delete(endpoint.id)


def test_after_a_rotation_both_secrets_verify_during_the_grace_period(
    client: Pushdial, receiver: Receiver
) -> None:
    endpoint = client.webhook_endpoints.create(url=receiver.url)
    rotated = client.webhook_endpoints.rotate_secret(endpoint.id, grace_period_s=3600)
    assert rotated.secret and rotated.secret != endpoint.secret
    client.webhook_endpoints.test(endpoint.id)
    headers, body = receiver.next_of_type("webhook.test")
    assert webhooks.verify(body, headers, rotated.secret)["type"] == "webhook.test"
    assert webhooks.verify(body, headers, endpoint.secret)["type"] == "webhook.test"
    client.webhook_endpoints.delete(endpoint.id)


def test_an_endpoint_is_listed_updated_and_deleted(client: Pushdial, receiver: Receiver) -> None:
    endpoint = client.webhook_endpoints.create(url=receiver.url, description="to change", event_types=["call.completed"])
    assert endpoint.id in [e.id for e in client.webhook_endpoints.list()]
    assert client.webhook_endpoints.get(endpoint.id).secret is None, "the secret is shown once"

    changed = client.webhook_endpoints.update(endpoint.id, enabled=False, rate_limit_per_s=5)
    assert changed.enabled is False and changed.rate_limit_per_s == 5
    assert changed.description == "to change", "a field not given stays"
    cleared = client.webhook_endpoints.update(endpoint.id, description=None, rate_limit_per_s=NOT_GIVEN)
    assert cleared.description is None, "None clears"
    assert cleared.rate_limit_per_s == 5

    client.webhook_endpoints.delete(endpoint.id)
    with pytest.raises(NotFoundError):
        client.webhook_endpoints.get(endpoint.id)
