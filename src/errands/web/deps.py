"""Who is asking, and may they: the one dependency every route declares.

    identity: Identity = Depends(requires(Action.READ))

authenticates the request by `Authorization: Bearer <token>` or the `errands_session` cookie (401 when neither
is valid), checks the CSRF token of a cookie-authenticated unsafe request (403), the role and the token's scope
(403), and counts the request against the identity's rate limit (429 with Retry-After) unless `counted=False`
(the event stream). The routes that need no identity are listed in OPEN_ROUTES; a test walks the app's routes
and fails for one that has neither.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from errands.access import Action, Identity
from errands.accounts import Accounts
from errands.client import Client
from errands.settings import Settings
from errands.web.errors import ApiError
from errands.web.spa import DASHBOARD_ROUTES

SESSION_COOKIE = "errands_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# (method, path) of the routes anyone may call: logging in, the schema, the probes, and /metrics (which checks
# settings.metrics_token itself, as Prometheus expects an open endpoint by default)
OPEN_ROUTES: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/auth/login"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/docs"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    }
    | DASHBOARD_ROUTES  # the dashboard's pages are its HTML shell: every datum they show comes through /api
)


@dataclass
class AppState:
    settings: Settings
    client: Client
    accounts: Accounts


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.errands
    return state


def requires(action: Action, *, counted: bool = True) -> Callable[..., Identity]:
    """The dependency of a route that needs `action`. Its `.action` and `.counted` say so to the route matrix."""

    def dependency(request: Request) -> Identity:
        state = app_state(request)
        identity = authenticate(state, request)
        if not identity.may(action):
            raise ApiError(403, f"{identity.actor} may not {action.value}: ask an administrator for a role that may")
        if counted:
            limit(state, identity)
        return identity

    dependency.action = action  # type: ignore[attr-defined]
    dependency.counted = counted  # type: ignore[attr-defined]
    return dependency


def authenticate(state: AppState, request: Request) -> Identity:
    """A bearer token wins over a cookie (a token needs no CSRF check: no browser sends one by itself)."""
    bearer = bearer_token(request)
    if bearer is not None:
        identity = state.accounts.token(bearer)
        if identity is None:
            raise ApiError(
                401, "the bearer token is unknown, revoked or expired", headers={"WWW-Authenticate": "Bearer"}
            )
        return identity
    cookie = request.cookies.get(SESSION_COOKIE)
    session = state.accounts.session(cookie) if cookie else None
    if session is None:
        raise ApiError(401, "log in first (POST /api/auth/login) or send Authorization: Bearer <token>")
    if request.method not in SAFE_METHODS:
        check_csrf(session, request)
    return session


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "Authorization must be `Bearer <token>`", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def check_csrf(identity: Identity, request: Request) -> None:
    sent = request.headers.get(CSRF_HEADER, "")
    expected = identity.csrf_token or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise ApiError(403, f"a request with the session cookie must carry the {CSRF_HEADER} header (GET /api/auth/me)")


def rate_key(identity: Identity) -> str:
    """One budget per user for their sessions, one per token."""
    if identity.token_id is not None:
        return f"token:{identity.token_id}"
    return f"user:{identity.user.id}"


def limit(state: AppState, identity: Identity) -> None:
    retry_after = state.accounts.hit(rate_key(identity), state.settings.rate_limit)
    if retry_after is not None:
        seconds = max(1, round(retry_after + 0.5))
        raise ApiError(
            429,
            f"rate limit: {state.settings.rate_limit} requests a minute; retry in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


# the identities routes declare, once: `identity: Reader`
Reader = Annotated[Identity, Depends(requires(Action.READ))]
Operator = Annotated[Identity, Depends(requires(Action.OPERATE))]
Admin = Annotated[Identity, Depends(requires(Action.ADMINISTER))]
