"""Fixtures of the end-to-end tests: the server `tests/it/sdk_python.rs` started, named by
environment variables. Without them (pytest run by hand, no server) the end-to-end tests
are skipped and only the offline ones run.

    PUSHDIAL_URL, PUSHDIAL_SECRET_KEY   a deployment and its organization's secret key
    PUSHDIAL_AGENT_ID                   an agent whose phone is connected: it dials an
                                        `auto` call at once and leaves a `prompt` call
                                        unanswered
    PUSHDIAL_LIMITED_URL, PUSHDIAL_LIMITED_SECRET_KEY
                                        a deployment that allows 2 API requests a second
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pushdial import Pushdial
from pushdial.models import Call


@dataclass(frozen=True)
class Server:
    url: str
    secret_key: str
    agent_id: str
    limited_url: str
    limited_secret_key: str


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run through tests/it/sdk_python.rs (cargo nextest run -E 'test(python_sdk)')")
    return value


@pytest.fixture(scope="session")
def server() -> Server:
    return Server(
        url=_env("PUSHDIAL_URL"),
        secret_key=_env("PUSHDIAL_SECRET_KEY"),
        agent_id=_env("PUSHDIAL_AGENT_ID"),
        limited_url=_env("PUSHDIAL_LIMITED_URL"),
        limited_secret_key=_env("PUSHDIAL_LIMITED_SECRET_KEY"),
    )


@pytest.fixture
def client(server: Server) -> Iterator[Pushdial]:
    with Pushdial(server.secret_key, base_url=server.url) as c:
        yield c


# The organization may call one number at most 10 times an hour: every test call gets
# a number of its own.
_numbers = itertools.count(100)


@pytest.fixture
def number() -> Callable[[], str]:
    return lambda: f"+1415555{next(_numbers):04d}"


def unknown_id(real_id: str) -> str:
    """A well-formed id of the same kind that names nothing (the body reversed)."""
    prefix, body = real_id.split("_", 1)
    return f"{prefix}_{body[::-1]}"


def wait_until(check: Callable[[], object], *, within: float = 10.0, what: str = "") -> object:
    """`check()`'s first truthy result, polled every 50 ms for `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def wait_for_status(client: Pushdial, call_id: str, *statuses: str) -> Call:
    def reached() -> Call | None:
        call = client.calls.get(call_id)
        return call if call.status in statuses else None

    return wait_until(reached, what=f"call {call_id} to be {statuses}")  # type: ignore[return-value]
