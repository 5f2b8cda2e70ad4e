"""pushdial: the Python client of the pushdial API.

    from pushdial import Pushdial
    client = Pushdial("pd_sk_…", base_url="http://127.0.0.1:8080")
    call = client.calls.create(to="+14155550123", agent_id="agt_…")

`Pushdial` is synchronous, `AsyncPushdial` the same with `await`. The models
(`pushdial.models`) are generated from the OpenAPI document; errors are in
`pushdial` (`PushdialError` and its subclasses); `pushdial.webhooks.verify` checks a
webhook delivery's signature.
"""

from . import models, webhooks
from ._async_client import AsyncPushdial
from ._client import Pushdial
from ._core import NOT_GIVEN, NotGiven, RetryPolicy
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    IdempotencyKeyInUseError,
    InvalidRequestError,
    NoDeviceReachableError,
    NotFoundError,
    PermissionDeniedError,
    PushdialError,
    RateLimitedError,
    ResponseValidationError,
    ServerError,
    ServiceUnavailableError,
    UnprocessableEntityError,
)
from ._pagination import AsyncPage, AsyncPaginator, SyncPage
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncPage",
    "AsyncPaginator",
    "AsyncPushdial",
    "AuthenticationError",
    "ConflictError",
    "IdempotencyKeyInUseError",
    "InvalidRequestError",
    "NOT_GIVEN",
    "NoDeviceReachableError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "Pushdial",
    "PushdialError",
    "RateLimitedError",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailableError",
    "SyncPage",
    "UnprocessableEntityError",
    "__version__",
    "models",
    "webhooks",
]
