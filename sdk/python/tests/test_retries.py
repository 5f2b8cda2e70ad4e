"""Retries against a real rate limit: the deployment of PUSHDIAL_LIMITED_URL allows 2 API
requests a second, and answers the rest `429 rate_limited` with `Retry-After`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
import pytest

from pushdial import APIError, Pushdial, RateLimitedError


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


def refused(server) -> RateLimitedError:
    """Spends the second's budget: the refusal that says so."""
    with Pushdial(server.limited_secret_key, base_url=server.limited_url, max_retries=0) as c:
        for _ in range(20):
            try:
                c.agents.list(limit=1)
            except RateLimitedError as e:
                return e
    raise AssertionError("the limited deployment never refused")


def test_without_retries_a_refusal_raises_with_its_retry_after(server) -> None:
    err = refused(server)
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
    # Right after a refusal the budget is spent, unless a slot frees in between: then
    # the create is simply not refused, and the next one (the budget spent again) is.
    for _ in range(5):
        wire = Wire()
        name = f"Retried {time.time_ns()}"
        refused(server)
        with Pushdial(
            server.limited_secret_key, base_url=server.limited_url, max_retries=5, http_client=wire.client()
        ) as c:
            agent = c.agents.create(name=name)
            keys = {key for _, key in wire.requests}
            assert wire.answers[-1][1] == 201
            assert len(keys) == 1 and None not in keys, "one key for every attempt of the create"
            if wire.answers[0][1] == 429:
                assert len(wire.requests) >= 2
                assert [a.id for a in c.agents.list(limit=100) if a.name == name] == [agent.id], "created once"
                return
    raise AssertionError("no create was refused")


def test_a_refused_cancel_is_not_resent(server) -> None:
    # A POST without an Idempotency-Key might do twice what it does once: not retried
    # (nor is the 400 that the malformed id gets when the budget allowed it).
    for _ in range(5):
        wire = Wire()
        refused(server)
        with Pushdial(
            server.limited_secret_key, base_url=server.limited_url, max_retries=5, http_client=wire.client()
        ) as c:
            with pytest.raises(APIError) as e:
                c.calls.cancel("call_x")
        assert len(wire.requests) == 1
        if isinstance(e.value, RateLimitedError):
            return
    raise AssertionError("no cancel was refused")
