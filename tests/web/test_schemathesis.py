"""schemathesis over the API's own OpenAPI schema, in-process (ASGI), as an admin's bearer token (operate scope:
the admin routes answer it 403, as declared): no 5xx, no status, content type or body outside the schema.

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

pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.slow]
MAX_EXAMPLES = 15
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


@pytest.fixture
def running(db_url: str, tmp_path: Path) -> Iterator[Api]:
    with running_api(web_settings(db_url, tmp_path)) as api:
        yield api


@pytest.fixture
def api_schema(running: Api) -> Any:
    return schemathesis.openapi.from_asgi("/api/openapi.json", running.app).exclude(path="/api/events")


@pytest.fixture
def token(running: Api) -> str:
    name = running.user(Role.ADMIN)
    _, secret = running.state.accounts.create_token(name, Scope.OPERATE, expires_days=None, name="st", actor="test")
    return str(secret)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure here is reproducible
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_the_api_keeps_its_contract(case: Any, token: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)
