"""Retries against a real rate limit: the deployment of PUSHDIAL_LIMITED_URL allows 2 API
requests a second, and answers the rest `429 rate_limited` with `Retry-After`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import pytest

from pushdial import Pushdial, RateLimitedError


@dataclass
class Wire:
    """What went over the wire: each request's time and Idempotency-Key, each answer's
    time, status and Retry-After."""

    requests: list[tuple[float, str | None]] = field(default_factory=list)
    answers: list[tuple[float, int, str | None]] = field(default_factory=list)

    def client(self) -> httpx.Client:
        return httpx.Client(
            event_hooks={
                "request": [lambda r: self.requests.append((time.monotonic(), r.headers.get("idempotency-key")))],
                "response": [
                    lambda r: self.answers.append((time.monotonic(), r.status_code, r.headers.get("retry-after")))
                ],
            }
        )


def exhaust(server) -> None:
    """Spends the second's budget, so that the next request is refused."""
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=0) as c:
        for _ in range(20):
            try:
                c.agents.list(limit=1)
            except RateLimitedError:
                return
    raise AssertionError("the limited deployment never refused")


def test_without_retries_a_refusal_raises_with_its_retry_after(server) -> None:
    exhaust(server)
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=0) as c:
        with pytest.raises(RateLimitedError) as e:
            c.agents.list()
    err = e.value
    assert err.status == 429 and err.code == "rate_limited"
    assert err.retry_after is not None and err.retry_after >= 1
    assert err.problem.status == 429 and err.problem.detail


def test_refused_reads_are_retried_never_before_retry_after(server) -> None:
    wire = Wire()
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=5, http_client=wire.client()) as c:
        for _ in range(5):
            c.agents.list(limit=1)  # each one succeeds, however often it was refused
    refusals = [(i, t, float(ra)) for i, (t, status, ra) in enumerate(wire.answers) if status == 429 and ra]
    assert refusals, "five reads at 2 a second meet the limit"
    for i, refused_at, retry_after in refusals:
        resent_at = wire.requests[i + 1][0]
        assert resent_at - refused_at >= retry_after, "never sooner than Retry-After"
    assert wire.answers[-1][1] == 200


def test_a_refused_create_is_retried_with_the_same_idempotency_key(server) -> None:
    wire = Wire()
    name = f"Retried {time.time_ns()}"
    exhaust(server)
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=5, http_client=wire.client()) as c:
        agent = c.agents.create(name=name)
        keys = {key for _, key in wire.requests}
        assert [status for _, status, _ in wire.answers][0] == 429, "the budget was spent"
        assert wire.answers[-1][1] == 201
        assert len(keys) == 1 and None not in keys, "one key for every attempt of the create"
        assert [a.id for a in c.agents.list(limit=100) if a.name == name] == [agent.id]


def test_a_refused_cancel_is_not_resent(server) -> None:
    # A POST without an Idempotency-Key might do twice what it does once: not retried.
    wire = Wire()
    exhaust(server)
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=5, http_client=wire.client()) as c:
        with pytest.raises(RateLimitedError):
            c.calls.cancel("call_x")
    assert len(wire.requests) == 1
