"""Sessions, CSRF, tokens and limits through the API (issue 11 items 2, 3 and 5)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from webapi import PASSWORD, Api, running_api, web_settings

from errands.access import Role, Scope
from errands.web.deps import SESSION_COOKIE

pytestmark = pytest.mark.backends("sqlite", "postgresql")
T = TypeVar("T")


def test_login_sets_a_hardened_cookie_and_gives_the_csrf_token(api: Api) -> None:
    name = api.user(Role.VIEWER)
    http = api.client()
    response = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"] == name and body["role"] == "viewer" and len(body["csrf_token"]) >= 32
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http (TestClient's http://testserver)
    me = http.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["csrf_token"] == body["csrf_token"]


def test_the_cookie_is_secure_over_https(api: Api) -> None:
    name = api.user(Role.VIEWER)
    http = api.client(base_url="https://testserver")
    response = http.post("/api/auth/login", json={"username": name, "password": PASSWORD})
    assert response.status_code == 200
    assert "Secure" in response.headers["set-cookie"]


def test_a_wrong_password_and_an_unknown_user_get_the_same_401(api: Api) -> None:
    name = api.user(Role.VIEWER)
    wrong = api.anonymous.post("/api/auth/login", json={"username": name, "password": "not the password"})
    unknown = api.anonymous.post("/api/auth/login", json={"username": "nobody", "password": "not the password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers


def test_logout_ends_the_session_on_the_server(api: Api) -> None:
    caller = api.login(Role.VIEWER)
    cookie = caller.http.cookies.get(SESSION_COOKIE)
    assert cookie
    assert caller.post("/api/auth/logout").status_code == 204
    replayed = api.client(cookies={SESSION_COOKIE: cookie})  # the old cookie, kept by an attacker
    answer = replayed.get("/api/auth/me")
    assert answer.status_code == 401
    assert "error" in answer.json()


def test_a_login_rotates_the_session(api: Api) -> None:
    caller = api.login(Role.VIEWER)
    first = caller.http.cookies.get(SESSION_COOKIE)
    again = caller.http.post("/api/auth/login", json={"username": caller.name, "password": PASSWORD})
    second = caller.http.cookies.get(SESSION_COOKIE)
    assert again.status_code == 200 and first != second
    assert api.client(cookies={SESSION_COOKIE: str(first)}).get("/api/auth/me").status_code == 401
    assert api.client(cookies={SESSION_COOKIE: str(second)}).get("/api/auth/me").status_code == 200


def test_a_cross_site_post_with_a_valid_cookie_and_no_token_is_refused(api: Api) -> None:
    caller = api.login(Role.OPERATOR)
    body = {"target": "examples.jobs:add", "args": [1, 2]}
    forged = caller.http.post("/api/jobs", json=body, headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert "X-CSRF-Token" in forged.json()["error"]
    wrong = caller.http.post("/api/jobs", json=body, headers={"X-CSRF-Token": "0" * 43})
    assert wrong.status_code == 403
    assert caller.post("/api/jobs", json=body).status_code == 201  # with the session's token
    assert api.state.client.jobs() and len(api.state.client.jobs()) == 1  # the refused ones did nothing


def test_a_bearer_token_needs_no_csrf_and_revocation_is_at_once(api: Api) -> None:
    caller = api.bearer(Role.OPERATOR, Scope.OPERATE)
    assert caller.post("/api/jobs", json={"target": "examples.jobs:add", "args": [1, 2]}).status_code == 201
    [token] = [t for t in api.state.accounts.tokens() if t.user == caller.name]
    api.state.accounts.revoke_token(token.id, actor="test")
    refused = caller.get("/api/jobs")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"


def test_an_unknown_or_malformed_bearer_is_401(api: Api) -> None:
    for header in ("Bearer errands_nope", "Basic dXNlcjpwYXNz", "Bearer "):
        answer = api.client(headers={"Authorization": header}).get("/api/jobs")
        assert answer.status_code == 401, header
        assert answer.json()["error"]


def test_a_token_never_goes_beyond_its_scope_nor_its_users_role(api: Api) -> None:
    read_only = api.bearer(Role.ADMIN, Scope.READ)
    assert read_only.get("/api/jobs").status_code == 200
    assert read_only.post("/api/jobs", json={"target": "examples.jobs:add"}).status_code == 403
    viewer = api.user(Role.VIEWER)
    admin = api.login(Role.ADMIN)
    beyond = admin.post("/api/tokens", json={"user": viewer, "scope": "operate"})
    assert beyond.status_code == 400  # a token can't be made to do more than its user
    assert "scope read" in beyond.json()["error"]
    admin_token = api.bearer(Role.ADMIN, Scope.OPERATE)
    assert admin_token.get("/api/users").status_code == 403  # administration takes a session


def in_one_window(scenario: Callable[[], T]) -> T:
    """The limits count in fixed one-minute windows (of the database's clock, the machine's here). A scenario
    must see one window, and start it empty: running it again after it straddled a minute's end started the
    new window with the first run's later hits in it (a 429 where a 401 was due). So with under 20 s left in
    this minute it starts with the next one; it takes a few seconds."""
    left = 60 - time.time() % 60
    if left < 20:
        time.sleep(left + 0.05)  # the event waited for is the clock's minute: nothing else signals it
    minute = time.time() // 60
    outcome = scenario()
    assert time.time() // 60 == minute, "the scenario outlasted its one-minute window"
    return outcome


@pytest.mark.backends("sqlite", "postgresql", "mariadb")
def test_requests_are_rate_limited_per_identity(db_url: str, tmp_path: Path) -> None:
    with running_api(web_settings(db_url, tmp_path, rate_limit=5)) as api:

        def scenario() -> tuple[list[int], httpx.Response]:
            caller = api.bearer(Role.VIEWER, Scope.READ)
            return [caller.get("/api/auth/me").status_code for _ in range(5)], caller.get("/api/auth/me")

        answers, limited = in_one_window(scenario)
        second = api.login(Role.VIEWER)
        assert answers == [200] * 5
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "rate limit" in limited.json()["error"]
        assert second.get("/api/auth/me").status_code == 200  # another identity has its own budget
        assert api.anonymous.get("/api/openapi.json").status_code == 200  # open routes are not counted


def test_failed_logins_are_limited_per_account(db_url: str, tmp_path: Path) -> None:
    with running_api(web_settings(db_url, tmp_path, login_rate_limit=3)) as api:

        def scenario() -> tuple[list[int], httpx.Response]:
            name = api.user(Role.VIEWER)
            login = {"username": name, "password": "wrong password"}
            wrong = [api.client().post("/api/auth/login", json=login).status_code for _ in range(3)]
            return wrong, api.client().post("/api/auth/login", json={**login, "password": PASSWORD})

        wrong, limited = in_one_window(scenario)
        assert wrong == [401] * 3
        assert limited.status_code == 429  # even with the right password, until the window ends
        assert int(limited.headers["retry-after"]) >= 1
