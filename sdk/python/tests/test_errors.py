"""Error answers of the real server become typed errors carrying the problem document."""

from __future__ import annotations

import socket

import httpx
import pytest

from conftest import unknown_id
from pushdial import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    InvalidRequestError,
    NoDeviceReachableError,
    NotFoundError,
    Pushdial,
    PushdialError,
    RetryPolicy,
)


def test_an_unknown_agent_is_not_found_with_its_problem(client: Pushdial, server) -> None:
    with pytest.raises(NotFoundError) as e:
        client.agents.get(unknown_id(server.agent_id))
    err = e.value
    assert isinstance(err, APIError) and isinstance(err, PushdialError)
    assert err.status == 404
    assert err.code == "resource_missing"
    assert err.problem.status == 404
    assert err.problem.request_id and err.request_id == err.problem.request_id
    assert err.retry_after is None
    assert "404" in str(err) and "resource_missing" in str(err)


def test_a_malformed_id_is_an_invalid_request(client: Pushdial) -> None:
    with pytest.raises(InvalidRequestError) as e:
        client.calls.get("call_doesnotexist")
    assert e.value.status == 400 and e.value.code == "invalid_id"
    assert [f.field for f in e.value.errors] == ["call_id"]


def test_a_bad_number_is_an_invalid_request_naming_the_field(client: Pushdial, server) -> None:
    with pytest.raises(InvalidRequestError) as e:
        client.calls.create(to="not a number", agent_id=server.agent_id)
    assert e.value.status == 400
    assert e.value.code
    assert any(f.field == "to" for f in e.value.errors), e.value.problem


def test_an_agent_without_a_phone_has_no_device_reachable(client: Pushdial, number) -> None:
    agent = client.agents.create(name="Nobody's phone")
    assert agent.reachable is False
    with pytest.raises(NoDeviceReachableError) as e:
        client.calls.create(to=number(), agent_id=agent.id)
    assert e.value.status == 409 and e.value.code == "no_device_reachable"
    assert not [c for c in client.calls.list(agent_id=agent.id)], "nothing was written"


def test_a_wrong_key_is_refused(server) -> None:
    with Pushdial("pd_sk_not_a_key", base_url=server.url) as c, pytest.raises(AuthenticationError) as e:
        c.agents.list()
    assert e.value.status == 401 and e.value.code


def test_no_server_is_a_connection_error_after_the_retries(unused_port: int) -> None:
    attempts: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda r: attempts.append(str(r.url))]})
    policy = RetryPolicy(max_retries=2, initial_delay=0.01, max_delay=0.02)
    with Pushdial("pd_sk_x", base_url=f"http://127.0.0.1:{unused_port}", retry_policy=policy, http_client=http) as c:
        with pytest.raises(APIConnectionError) as e:
            c.calls.get("call_x")
    assert e.value.status is None and e.value.problem is None
    assert len(attempts) == 3, "the first try and two retries"
    http.close()


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
