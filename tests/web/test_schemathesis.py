"""schemathesis over the API's own OpenAPI schema, in-process (ASGI): no 5xx, no status, content type or body
outside the schema. Every operation as an admin's bearer token (operate scope: the admin routes answer it 403,
as declared), then the admin routes (users, tokens, audit) again as an admin's session with its CSRF token.

A small CI profile: a few examples per operation, no shrinking, one deadline for the whole run. The event
stream (/api/events) never ends, so it is left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from webapi import Api, running_api, web_settings

from errands.access import Role, Scope
from errands.web.deps import SESSION_COOKIE

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.slow]
MAX_EXAMPLES = 15
ADMIN_EXAMPLES = 8
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


@pytest.fixture
def running(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with running_api(web_settings(db_url, tmp_path)) as api:
        yield api


@pytest.fixture
def api_schema(running: Api) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", running.app)


@pytest.fixture
def token(running: Api) -> str:
    name = running.user(Role.ADMIN)
    _, secret = running.state.accounts.create_token(name, Scope.OPERATE, expires_days=None, name="st", actor="test")
    return str(secret)


@pytest.fixture
def admin_session(running: Api) -> dict[str, str]:
    caller = running.login(Role.ADMIN)
    return {"Cookie": f"{SESSION_COOKIE}={caller.http.cookies[SESSION_COOKIE]}", "X-CSRF-Token": str(caller.csrf)}


# (filters go on the lazy schemas: those of the fixture's schema are not applied to the parametrized test)
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/events")
admin = schemathesis.pytest.from_fixture("api_schema").include(path_regex="^/api/(users|tokens|audit)")
PROFILE = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@PROFILE
def test_the_api_keeps_its_contract(case: Any, token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


@admin.parametrize()
@settings(PROFILE, max_examples=ADMIN_EXAMPLES)  # each user created or changed costs an Argon2 hash
def test_the_admin_routes_keep_their_contract(case: Any, admin_session: dict[str, str]) -> None:
    case.call_and_validate(headers=admin_session, checks=CHECKS)
