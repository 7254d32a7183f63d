"""Helpers of the web tests (conftest.py makes the `api` fixture of them).

The API in-process: FastAPI's TestClient (httpx over ASGI) on the app of `create_app`, against a real migrated
database of tests/conftest.py (SQLite unless a test is parametrized over backends).

`api` is the app with its lifespan running; `Caller`s act as one identity each on it: `login(role)` makes a user
of that role and a session (its cookie and CSRF token), `bearer(role, scope)` a user and an API token.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from errands.access import Role, Scope
from errands.settings import Settings
from errands.web.app import create_app
from errands.web.deps import AppState

ALLOWED_JOBS: dict[str, list[str]] = {
    "examples.jobs.SampleJob": ["process", "send_email"],
    "examples.jobs.FailingJob": ["process"],
    "examples.jobs:add": [],
}
PASSWORD = "correct horse battery staple"
_names = itertools.count(1)


def web_settings(db_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "database_url": db_url,
        "log_file": tmp_path / "logs" / "job.log",
        "error_log_file": tmp_path / "logs" / "error.log",
        "allowed_jobs": ALLOWED_JOBS,
        "retry_delay": 0,
        "max_retries": 1,
        "rate_limit": 100_000,  # the rate-limit tests set their own
        "secret_key": "k" * 32,
    }
    return Settings(**{**fields, **overrides})


@dataclass
class Api:
    """The running app, and a way to make callers on it."""

    app: FastAPI
    anonymous: TestClient
    callers: list[TestClient] = field(default_factory=list)

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.errands
        return state

    def client(self, **kwargs: Any) -> TestClient:
        return TestClient(self.app, **kwargs)  # shares the lifespan the `anonymous` client started

    def user(self, role: Role) -> str:
        name = f"{role.value}{next(_names)}"
        self.state.accounts.create_user(name, role, PASSWORD, actor="test")
        return name

    def login(self, role: Role = Role.ADMIN, *, name: str | None = None, password: str = PASSWORD) -> Caller:
        name = name or self.user(role)
        http = self.client()
        response = http.post("/api/auth/login", json={"username": name, "password": password})
        assert response.status_code == 200, response.text
        return Caller(http, name, csrf=response.json()["csrf_token"])

    def bearer(self, role: Role = Role.OPERATOR, scope: Scope = Scope.OPERATE, *, name: str | None = None) -> Caller:
        name = name or self.user(role)
        _, token = self.state.accounts.create_token(name, scope, expires_days=None, name="test", actor="test")
        http = self.client(headers={"Authorization": f"Bearer {token}"})
        return Caller(http, name, token=token)


@dataclass
class Caller:
    """One identity: a session (cookie in `http`'s jar, `csrf` for unsafe requests) or a bearer token."""

    http: TestClient
    name: str
    csrf: str | None = None
    token: str | None = None

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.request("POST", url, headers=self._csrf(kwargs.pop("headers", {})), **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.request("DELETE", url, headers=self._csrf(kwargs.pop("headers", {})), **kwargs)

    def _csrf(self, headers: dict[str, str]) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf, **headers} if self.csrf else headers


@contextmanager
def running_api(settings: Settings) -> Iterator[Api]:
    app = create_app(settings)
    with TestClient(app) as anonymous:
        yield Api(app, anonymous)
