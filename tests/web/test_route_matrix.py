"""Every route x every role, generated from the app's own routes: a route with no rule fails here.

A route either declares `Depends(requires(action))` (errands.web.deps) or is listed in OPEN_ROUTES. Anonymous
callers get 401 on every other route; a viewer gets 403 where the action is OPERATE or ADMINISTER, an operator
where it is ADMINISTER; an admin is let through (whatever the route then says of the request, never a 5xx).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route
from webapi import Api, Caller

from errands.access import Action, Role, permits
from errands.web.deps import OPEN_ROUTES
from errands.web.spa import DASHBOARD_ROUTES

pytestmark = pytest.mark.backends("sqlite")
ROLES = (None, Role.VIEWER, Role.OPERATOR, Role.ADMIN)  # None: anonymous


def endpoints(routes: list[BaseRoute]) -> Iterator[tuple[str, str, BaseRoute]]:
    """(method, path, route) of every route, those of included routers too (FastAPI keeps an included router
    whole, as its `original_router`; the routers here are included without a prefix of their own)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from endpoints(included.routes)
        elif isinstance(route, Route):
            for method in sorted((route.methods or set()) - {"HEAD"}):
                yield method, route.path, route


def test_the_walk_finds_every_operation_of_the_schema(api: Api) -> None:
    schema = api.anonymous.get("/api/openapi.json").json()
    documented = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    walked = {(method, path) for method, path, _ in endpoints(api.app.routes)}
    assert documented <= walked
    assert walked - documented <= {("GET", "/api/openapi.json"), ("GET", "/api/docs")} | DASHBOARD_ROUTES


def rule(route: BaseRoute) -> Any:
    """The `requires` dependency of a route, wherever it sits in its dependencies, or None."""
    if not isinstance(route, APIRoute):
        return None
    stack: list[Dependant] = [route.dependant]
    while stack:
        dependant = stack.pop()
        if hasattr(dependant.call, "action"):
            return dependant.call
        stack.extend(dependant.dependencies)
    return None


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "999999", path)


def test_every_route_has_a_rule(api: Api) -> None:
    missing = [
        f"{method} {path}"
        for method, path, route in endpoints(api.app.routes)
        if (method, path) not in OPEN_ROUTES and rule(route) is None
    ]
    assert not missing, f"routes with neither Depends(requires(...)) nor an OPEN_ROUTES entry: {missing}"


def test_the_matrix(api: Api) -> None:
    callers: dict[Role, Caller] = {role: api.login(role) for role in (Role.VIEWER, Role.OPERATOR, Role.ADMIN)}
    checked = 0
    for method, path, route in endpoints(api.app.routes):
        url = concrete(path)
        if (method, path) in OPEN_ROUTES:
            answer = api.anonymous.request(method, url, json={} if method != "GET" else None)
            if (method, path) in DASHBOARD_ROUTES and "dashboard not built" in answer.text:
                assert answer.status_code == 503  # `make web` not run here: the page says so, no sign-in asked
                continue
            assert answer.status_code not in (401, 403) and answer.status_code < 500, (method, path, answer.text)
            continue
        requirement = rule(route)
        assert requirement is not None
        for role in ROLES:
            if role is not None and not requirement.counted and permits(role, None, requirement.action):
                continue  # the event stream never ends: its own tests read it
            status = call(api, callers, role, method, url)
            expected = expectation(role, requirement.action)
            assert status < 500, (method, path, role, status)
            if expected == "allowed":
                assert status not in (401, 403), (method, path, role, status)
            else:
                assert status == expected, (method, path, role, status)
            checked += 1
    assert checked >= 40  # the jobs, auth and admin routes at least, for every role


def call(api: Api, callers: dict[Role, Caller], role: Role | None, method: str, url: str) -> int:
    body = {} if method in ("POST", "PUT", "PATCH") else None
    if role is None:
        return api.anonymous.request(method, url, json=body).status_code
    caller = callers[role]
    if url == "/api/auth/logout":
        caller = api.login(role)  # a session of its own: logging out must not end the matrix's
    headers = {"X-CSRF-Token": caller.csrf or ""}
    return caller.http.request(method, url, json=body, headers=headers).status_code


def expectation(role: Role | None, action: Action) -> int | str:
    if role is None:
        return 401
    return "allowed" if permits(role, None, action) else 403
