"""Logging in and out: the session cookie `errands_session` and the CSRF token that goes with it.

The cookie is HttpOnly, SameSite=Lax, Path=/, and Secure when the request came over https: the request's own
scheme, which uvicorn sets from X-Forwarded-Proto when the proxy's address is trusted (FORWARDED_ALLOW_IPS,
127.0.0.1 by default; docs/api.md). A login always starts a new session (and ends the one the request carried).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from errands.access import Identity
from errands.web.deps import SESSION_COOKIE, Reader, app_state
from errands.web.schemas import ErrorOut, LoginIn, SessionOut

router = APIRouter(prefix="/api/auth", tags=["auth"])

_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (400, 401, 403, 413, 422, 429, 503)}


def session_json(identity: Identity) -> dict[str, Any]:
    return {
        "user": identity.user.name,
        "role": identity.user.role.value,
        "scope": identity.scope.value if identity.scope else None,
        "csrf_token": identity.csrf_token,
    }


@router.post("/login", response_model=SessionOut, responses=_ERRORS)
def login(body: LoginIn, request: Request, response: Response) -> dict[str, Any]:
    """Start a session: sets the `errands_session` cookie; the body holds the CSRF token."""
    state = app_state(request)
    address = request.client.host if request.client else "unknown"
    cookie, identity = state.accounts.login(body.username, body.password, address=address)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        state.accounts.logout(previous)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(state.settings.session_max),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return session_json(identity)


@router.post("/logout", status_code=204, responses=_ERRORS)
def logout(request: Request, identity: Reader) -> Response:
    """End the session on the server (its cookie gets 401 from now on). With a bearer token: nothing to end."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if identity.session_id is not None and cookie:
        app_state(request).accounts.logout(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get("/me", response_model=SessionOut, responses=_ERRORS)
def me(identity: Reader) -> dict[str, Any]:
    """Who is asking, and the session's CSRF token again (a page reloaded in the browser needs it)."""
    return session_json(identity)
