"""The errors the SDK raises.

Every error is a `PushdialError`. An answer of the server that is not 2xx is an `APIError`
subclass chosen by its status (and, for a few, by the problem's `code`), carrying the
problem document (RFC 9457), its `code`, the `Request-Id` and the `Retry-After` the server
asked for. A request that got no answer at all is an `APIConnectionError`.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

from .models import Problem


class PushdialError(Exception):
    """Base of every error raised by the SDK.

    `status`, `code`, `problem` and `retry_after` are set when the server answered (see
    `APIError`); they are `None` when it did not.
    """

    status: int | None = None
    code: str | None = None
    problem: Problem | None = None
    retry_after: float | None = None
    request_id: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(PushdialError):
    """No answer: the connection failed or broke before a response arrived."""

    def __init__(self, message: str = "connection to the pushdial API failed") -> None:
        super().__init__(message)


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout."""

    def __init__(self, message: str = "request to the pushdial API timed out") -> None:
        super().__init__(message)


class ResponseValidationError(PushdialError):
    """A 2xx answer whose body is not what the OpenAPI document promises."""

    def __init__(self, message: str, *, status: int, body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class APIError(PushdialError):
    """The server answered with an error status and a problem document.

    Attributes:
        status: the HTTP status.
        code: the problem's stable machine-readable code (`no_device_reachable`, …).
        problem: the whole problem document (`type`, `title`, `detail`, `errors`, …).
        retry_after: seconds the server asked to wait before retrying (`Retry-After`), if any.
        request_id: the request's id, to quote when asking for support.
        response: the raw `httpx.Response`.
    """

    status: int
    problem: Problem

    def __init__(
        self,
        problem: Problem,
        *,
        status: int,
        retry_after: float | None,
        response: httpx.Response | None = None,
    ) -> None:
        self.status = status
        self.problem = problem
        self.code = problem.code or None
        self.request_id = problem.request_id or (
            response.headers.get("request-id") if response is not None else None
        )
        self.retry_after = retry_after
        self.response = response
        message = f"{status}"
        if self.code:
            message += f" {self.code}"
        if problem.title:
            message += f": {problem.title}"
        if problem.detail and problem.detail != problem.title:
            message += f" — {problem.detail}"
        if self.request_id:
            message += f" [request {self.request_id}]"
        super().__init__(message)

    @property
    def errors(self) -> list[Any]:
        """The invalid fields (`field`, `message`) of a validation failure."""
        return list(self.problem.errors or [])


class InvalidRequestError(APIError):
    """400 or 413: the request is malformed or its values are not acceptable."""


class AuthenticationError(APIError):
    """401: no key, or a key that is not valid (revoked, expired)."""


class PermissionDeniedError(APIError):
    """403: the key may not do this (its creator's role, the origin, …)."""


class NotFoundError(APIError):
    """404: no such resource in the key's organization."""


class ConflictError(APIError):
    """409: the resource's state does not allow this now."""


class NoDeviceReachableError(ConflictError):
    """409 `no_device_reachable`: no phone of the agent can take a call now; nothing was written."""


class IdempotencyKeyInUseError(ConflictError):
    """409 `idempotency_key_in_use`: a request with this key is still being answered."""


class UnprocessableEntityError(APIError):
    """422: the request is understood but refused (`number_not_callable`, a reused key, …)."""


class RateLimitedError(APIError):
    """429: a rate limit refused the request; `retry_after` says when to try again."""


class ServerError(APIError):
    """5xx: the server failed to answer this request."""


class ServiceUnavailableError(ServerError):
    """503: overloaded, or a dependency is down; `retry_after` says when to try again."""


_BY_CODE: dict[str, type[APIError]] = {
    "no_device_reachable": NoDeviceReachableError,
    "idempotency_key_in_use": IdempotencyKeyInUseError,
}

_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: InvalidRequestError,
    422: UnprocessableEntityError,
    429: RateLimitedError,
    503: ServiceUnavailableError,
}


def error_class(status: int, code: str | None) -> type[APIError]:
    """The most specific error class for an answer's status and problem code."""
    by_status = _BY_STATUS.get(status) or (ServerError if status >= 500 else APIError)
    by_code = _BY_CODE.get(code or "")
    if by_code is not None and issubclass(by_code, by_status):
        return by_code
    return by_status


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """`Retry-After` in seconds: delta-seconds (what pushdial sends) or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(response: httpx.Response) -> APIError:
    """The error for a non-2xx answer: its problem document, or one made from the status
    when the body is not a problem document (a proxy's error page, say)."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    body: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    problem: Problem | None = None
    if isinstance(body, dict):
        try:
            problem = Problem.model_validate(body)
        except ValueError:
            problem = None
    if problem is None:
        text = response.text[:500] if response.content else ""
        problem = Problem.model_construct(
            type="about:blank",
            title=response.reason_phrase or f"HTTP {response.status_code}",
            status=response.status_code,
            detail=text,
            code=(body.get("code") if isinstance(body, dict) else None) or "",
            request_id=response.headers.get("request-id", ""),
            errors=[],
        )
    cls = error_class(response.status_code, problem.code)
    return cls(problem, status=response.status_code, retry_after=retry_after, response=response)
