"""What the sync and the async clients share: how a request is described (`Operation`),
built, retried and answered. Only the sending and the sleeping differ between the two
clients, so each one's loop is a few lines around this module's decisions.
"""

from __future__ import annotations

import math
import os
import platform
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
import pydantic

from ._errors import (
    APIConnectionError,
    APITimeoutError,
    ResponseValidationError,
    error_from_response,
    parse_retry_after,
)
from ._version import __version__

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RETRIES = 2

# Methods that HTTP defines as idempotent: sending one twice does no more than once.
_IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class NotGiven:
    """The value of an argument that was not passed, where `None` means something
    (a `PATCH` field set to `null` clears it)."""

    _instance: NotGiven | None = None

    def __new__(cls) -> NotGiven:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven()


def new_idempotency_key() -> str:
    """A fresh key for one logical create, kept for its retries."""
    return f"pd-py-{uuid.uuid4()}"


def drop_unset(values: Mapping[str, Any], *, keep_none: bool = False) -> dict[str, Any]:
    """The arguments that were given: `NOT_GIVEN` is always dropped, `None` too unless
    `keep_none` (a `PATCH`, where `null` clears a field)."""
    return {
        k: v
        for k, v in values.items()
        if not isinstance(v, NotGiven) and (keep_none or v is not None)
    }


@dataclass(frozen=True)
class Operation(Generic[T]):
    """One API request: method, path, query, body, and the model its answer decodes to
    (`None`: the answer's JSON as it is)."""

    method: str
    path: str
    cast_to: type[T] | None = None
    params: Mapping[str, Any] | None = None
    json: Any = None
    idempotency_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        """Whether sending it again cannot do twice what it does once: an idempotent
        method, or a create that carries an `Idempotency-Key`."""
        return self.method in _IDEMPOTENT_METHODS or self.idempotency_key is not None


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before sending a request again.

    A refused or unanswered request (429, 503, a `409 idempotency_key_in_use`, a broken
    connection) is retried up to `max_retries` times when it is `retryable`, after an
    exponential backoff with full jitter (a random wait between 0 and
    `initial_delay * 2**attempt`, at most `max_delay`), and never sooner than the
    server's `Retry-After` (then spread over up to half as long again, so that clients
    refused together do not come back together). A `Retry-After` longer than
    `max_retry_after` is not waited for: the error is raised at once.
    """

    max_retries: int = DEFAULT_MAX_RETRIES
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        # A count that is not a finite whole number (NaN is never reached by `attempt >=`)
        # would retry for ever: it falls back to the default; a negative one is no retry.
        n = self.max_retries
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not math.isfinite(n):
            n = DEFAULT_MAX_RETRIES
        object.__setattr__(self, "max_retries", max(0, int(n)))

    def delay(
        self, attempt: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """The wait before retry number `attempt + 1` (`attempt` counts from 0)."""
        rng = rng or _rng
        ceiling = min(self.max_delay, self.initial_delay * (2**attempt))
        backoff = rng.uniform(0, ceiling)
        if retry_after is None:
            return backoff
        return max(backoff, rng.uniform(retry_after, retry_after * 1.5))


_rng = random.SystemRandom()


def _retriable_status(response: httpx.Response) -> bool:
    if response.status_code in (429, 503):
        return True
    if response.status_code == 409:
        # The same key is being answered right now: its answer will be replayed.
        try:
            return bool(response.json().get("code") == "idempotency_key_in_use")
        except (ValueError, AttributeError):
            return False
    return False


class ClientCore:
    """Configuration and decisions shared by `Pushdial` and `AsyncPushdial`."""

    def __init__(
        self,
        api_key: str | None,
        *,
        base_url: str | None,
        timeout: float | httpx.Timeout | None,
        max_retries: int,
        retry_policy: RetryPolicy | None,
        default_headers: Mapping[str, str] | None,
    ) -> None:
        api_key = api_key or os.environ.get("PUSHDIAL_API_KEY")
        if not api_key:
            raise ValueError(
                "no API key: pass api_key='pd_sk_…' or set PUSHDIAL_API_KEY"
            )
        self.api_key = api_key
        self.base_url = (
            base_url or os.environ.get("PUSHDIAL_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        self.retry_policy = retry_policy or RetryPolicy(max_retries=max_retries)
        self.default_headers = {
            "Accept": "application/json",
            "User-Agent": f"pushdial-python/{__version__} (Python {platform.python_version()})",
            **(default_headers or {}),
        }

    def build_request(self, http: httpx.Client | httpx.AsyncClient, op: Operation[Any]) -> httpx.Request:
        headers = {**self.default_headers, "Authorization": f"Bearer {self.api_key}", **op.headers}
        if op.idempotency_key is not None:
            headers["Idempotency-Key"] = op.idempotency_key
        params = {k: _query_value(v) for k, v in (op.params or {}).items() if v is not None}
        return http.build_request(
            op.method,
            self.base_url + op.path,
            params=params or None,
            json=_jsonable(op.json) if op.json is not None else None,
            headers=headers,
            timeout=self.timeout,
        )

    def retry_delay(
        self,
        op: Operation[Any],
        attempt: int,
        response: httpx.Response | None = None,
        error: Exception | None = None,
    ) -> float | None:
        """The wait before sending `op` again, or `None` when it must not be sent again."""
        policy = self.retry_policy
        if attempt >= policy.max_retries:
            return None
        if error is not None:
            # A connection never made carried nothing: safe to send again whatever it was.
            never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
            return policy.delay(attempt, None) if (op.retryable or never_sent) else None
        if response is None or not op.retryable or not _retriable_status(response):
            return None
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > policy.max_retry_after:
            return None
        return policy.delay(attempt, retry_after)

    @staticmethod
    def connection_error(error: httpx.TransportError) -> APIConnectionError:
        if isinstance(error, httpx.TimeoutException):
            return APITimeoutError(f"request to the pushdial API timed out: {error!r}")
        return APIConnectionError(f"connection to the pushdial API failed: {error!r}")

    @staticmethod
    def answer(op: Operation[T], response: httpx.Response) -> T:
        """The decoded answer, or the error it stands for."""
        if not response.is_success:
            raise error_from_response(response)
        try:
            body: Any = response.json() if response.content else None
        except ValueError as e:
            raise ResponseValidationError(
                f"{op.method} {op.path}: the answer is not JSON: {e}",
                status=response.status_code,
                body=response.text[:500],
            ) from e
        if op.cast_to is None:
            return body  # type: ignore[no-any-return]
        try:
            return op.cast_to.model_validate(body)  # type: ignore[attr-defined,no-any-return]
        except pydantic.ValidationError as e:
            raise ResponseValidationError(
                f"{op.method} {op.path}: the answer does not match {op.cast_to.__name__}: {e}",
                status=response.status_code,
                body=body,
            ) from e


def _query_value(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _jsonable(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
