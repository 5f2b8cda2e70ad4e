"""The decisions the clients share, on answers built here: when a request is sent again
and after how long, and which error an answer becomes. (The end-to-end tests meet real
429s; a real 503 or a proxy's error page cannot be had from a test server on demand.)"""

from __future__ import annotations

import random
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from pushdial import (
    APIError,
    ConflictError,
    NoDeviceReachableError,
    NotFoundError,
    RetryPolicy,
    ServerError,
    ServiceUnavailableError,
)
from pushdial._core import ClientCore, Operation
from pushdial._errors import error_class, error_from_response, parse_retry_after

GET = Operation("GET", "/v1/calls")
CANCEL = Operation("POST", "/v1/calls/call_x/cancel")
CREATE = Operation("POST", "/v1/calls", idempotency_key="k")


def core(**policy: float) -> ClientCore:
    return ClientCore(
        "pd_sk_x",
        base_url="http://127.0.0.1:1",
        timeout=None,
        max_retries=2,
        retry_policy=RetryPolicy(**policy) if policy else None,  # type: ignore[arg-type]
        default_headers=None,
    )


def answer(status: int, *, retry_after: str | None = None, json: object = None) -> httpx.Response:
    headers = {"retry-after": retry_after} if retry_after else {}
    return httpx.Response(status, headers=headers, json=json if json is not None else {"code": "x"})


def test_backoff_is_full_jitter_under_an_exponential_ceiling() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=3.0)
    rng = random.Random(7)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        delays = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > ceiling * 0.8 and min(delays) < ceiling * 0.2, "spread over the whole range"


def test_a_retry_after_is_a_floor_spread_over_half_as_long_again() -> None:
    policy = RetryPolicy()
    delays = [policy.delay(0, 2.0) for _ in range(200)]
    assert min(delays) >= 2.0 and max(delays) <= 3.0


@pytest.mark.parametrize(
    ("op", "status", "code", "retried"),
    [
        (GET, 429, "rate_limited", True),
        (GET, 503, "overloaded", True),
        (CREATE, 503, "dependency_unavailable", True),
        (CREATE, 409, "idempotency_key_in_use", True),
        (CANCEL, 429, "rate_limited", False),  # a POST without a key is never resent
        (CANCEL, 503, "overloaded", False),
        (GET, 500, "internal_error", False),
        (GET, 409, "call_not_cancelable", False),
        (GET, 404, "resource_missing", False),
    ],
)
def test_what_is_sent_again(op: Operation[object], status: int, code: str, retried: bool) -> None:
    delay = core().retry_delay(op, 0, response=answer(status, retry_after="1", json={"code": code}))
    assert (delay is not None) == retried
    if retried:
        assert delay is not None and delay >= 1.0


def test_retries_stop_after_max_retries_and_at_a_long_retry_after() -> None:
    c = core()
    assert c.retry_delay(GET, 1, response=answer(503)) is not None
    assert c.retry_delay(GET, 2, response=answer(503)) is None
    assert c.retry_delay(GET, 0, response=answer(429, retry_after="3600")) is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [(float("nan"), 2), (float("inf"), 2), (-3, 0), (2.7, 2), (5, 5), (0, 0)],
)
def test_a_max_retries_that_is_no_count_falls_back_instead_of_retrying_for_ever(given: float, kept: int) -> None:
    # `attempt >= nan` is never true: a NaN count retried a 503 for ever.
    policy = RetryPolicy(max_retries=given)  # type: ignore[arg-type]
    assert policy.max_retries == kept
    c = ClientCore(
        "pd_sk_x",
        base_url="http://127.0.0.1:1",
        timeout=None,
        max_retries=given,  # type: ignore[arg-type]
        retry_policy=None,
        default_headers=None,
    )
    assert c.retry_policy.max_retries == kept
    assert c.retry_delay(GET, kept, response=answer(503)) is None


def test_a_connection_never_made_is_retried_whatever_the_request() -> None:
    c = core()
    refused = httpx.ConnectError("refused")
    broken = httpx.ReadError("reset")
    assert c.retry_delay(CANCEL, 0, error=refused) is not None
    assert c.retry_delay(CANCEL, 0, error=broken) is None, "the cancel may have been done"
    assert c.retry_delay(CREATE, 0, error=broken) is not None, "its key makes it safe"


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 <= (parse_retry_after(format_datetime(later, usegmt=True)) or 0) <= 31


def test_errors_by_status_then_code() -> None:
    assert error_class(503, "overloaded") is ServiceUnavailableError
    assert error_class(409, "no_device_reachable") is NoDeviceReachableError
    assert error_class(409, "something_new") is ConflictError
    assert error_class(404, "no_device_reachable") is NotFoundError, "a code under another status"
    assert error_class(502, "") is ServerError
    assert error_class(418, "") is APIError


def test_an_answer_that_is_no_problem_document_still_becomes_a_typed_error() -> None:
    page = httpx.Response(
        502,
        headers={"content-type": "text/html", "request-id": "req_1", "retry-after": "2"},
        text="<html>bad gateway</html>",
    )
    err = error_from_response(page)
    assert isinstance(err, ServerError)
    assert err.status == 502 and err.retry_after == 2.0 and err.request_id == "req_1"
    assert err.problem.status == 502 and "bad gateway" in err.problem.detail
    assert err.code is None
