"""Bad input never makes a 5xx (issue 11 item 10): oversized, malformed, huge, deep, NUL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from webapi import Api, Caller, running_api, web_settings

from errands.access import Role, Scope

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def operator(api: Api) -> Caller:
    return api.bearer(Role.OPERATOR, Scope.OPERATE)


def test_oversized_bodies_are_413_with_or_without_content_length(db_url: str, tmp_path: Path) -> None:
    with running_api(web_settings(db_url, tmp_path, max_body_bytes=2048)) as api:
        caller = api.bearer(Role.OPERATOR, Scope.OPERATE)
        big = b'{"target": "examples.jobs:add", "args": ["' + b"x" * 4000 + b'"]}'

        def chunks(body: bytes) -> Iterator[bytes]:
            for start in range(0, len(body), 500):
                yield body[start : start + 500]

        headers = {"Content-Type": "application/json"}
        for content in (big, chunks(big)):
            answer = caller.post("/api/jobs", content=content, headers=headers)
            assert answer.status_code == 413
            assert "2048 bytes" in answer.json()["error"]
        assert api.state.client.jobs() == []
        small = caller.post(
            "/api/jobs", content=chunks(b'{"target": "examples.jobs:add", "args": [1, 2]}'), headers=headers
        )
        assert small.status_code == 201, small.text  # a chunked body under the limit goes through


@pytest.mark.parametrize(
    "body",
    [
        b'{"target": "examples.jobs:add", "args": [' + b"9" * 5000 + b"]}",  # beyond Python's int parsing
        b'{"target": "examples.jobs:add", "args": [' + b"9" * 40 + b"]}",  # beyond 64 bits
        b'{"target": "examples.jobs:add", "args": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # deep
        b'{"target": "examples.jobs:add", "args": ' + b"[" * 150 + b"]" * 150 + b"}",  # deep, parseable
        b'{"target": "examples.jobs:add\\u0000", "args": []}',  # NUL in the target
        b'{"target": "examples.jobs:add", "args": ["\\ud800"]}',  # a lone surrogate
        b'{"target": "examples.jobs:add", "queue": "a\\u0000b"}',
        b'{"target": "examples.jobs:add", "priority": 99999999999}',
        b'{"target": "examples.jobs:add", "delay": 1e308}',
        b'{"target": "examples.jobs:add", "delay": -1}',
        b'{"target": "examples.jobs:add", "kwargs": []}',
        b'{"target": "examples.jobs:add", "then": []}',  # an unknown field
        b'{"target": 5}',
        b"not json at all",
        b'{"target": "examples.jobs:add"',
        b"\xff\xfe\x00",
        b"[]",
        b"",
    ],
)
def test_malformed_enqueues_are_4xx_with_a_json_body(api: Api, operator: Caller, body: bytes) -> None:
    answer = operator.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code in (400, 422), answer.text[:300]
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]
    assert "Traceback" not in answer.text
    assert api.state.client.jobs() == []


def test_a_login_body_that_is_not_a_login(api: Api) -> None:
    for body in ({}, {"username": "a"}, {"username": "a" * 101, "password": "x" * 8}, {"username": ["a"]}):
        answer = api.anonymous.post("/api/auth/login", json=body)
        assert answer.status_code == 422, body
        assert answer.json()["error"] == "invalid request"


def test_a_validation_error_never_echoes_the_input(api: Api) -> None:
    secret = "hunter2-the-password" * 60
    answer = api.anonymous.post("/api/auth/login", json={"username": "admin", "password": secret})
    assert answer.status_code == 422
    assert "hunter2" not in answer.text


def test_unknown_paths_and_methods(api: Api, operator: Caller) -> None:
    assert api.anonymous.get("/api/nope").status_code == 404
    wrong_method = operator.http.put("/api/jobs")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]
