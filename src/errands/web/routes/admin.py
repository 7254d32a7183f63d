"""Administration (admin role only): users, API tokens, and the audit trail.

The Accounts service records the user and token changes in the audit trail itself, with the actor given here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from errands.web.deps import Admin, app_state
from errands.web.schemas import (
    INT64_MAX,
    AuditOut,
    ErrorOut,
    PasswordIn,
    TokenCreatedOut,
    TokenIn,
    TokensOut,
    UserIn,
    UserOut,
    UsersOut,
)

router = APIRouter(prefix="/api", tags=["admin"])

UserName = Annotated[str, Path(min_length=1, max_length=100)]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (400, 401, 403, 413, 422, 429, 503, *codes)}


@router.get("/users", response_model=UsersOut, responses=_errors())
def users(request: Request, identity: Admin) -> dict[str, Any]:
    return {"users": [user.to_json() for user in app_state(request).accounts.users()]}


@router.post("/users", status_code=201, response_model=UserOut, responses=_errors(409))
def create_user(body: UserIn, request: Request, identity: Admin) -> dict[str, Any]:
    user = app_state(request).accounts.create_user(body.name, body.role, body.password, actor=identity.actor)
    return user.to_json()


@router.delete("/users/{name}", status_code=204, responses=_errors(404))
def delete_user(name: UserName, request: Request, identity: Admin) -> Response:
    """Delete a user: their sessions end and their tokens are revoked at once."""
    app_state(request).accounts.delete_user(name, actor=identity.actor)
    return Response(status_code=204)


@router.post("/users/{name}/password", status_code=204, responses=_errors(404))
def set_password(name: UserName, body: PasswordIn, request: Request, identity: Admin) -> Response:
    """Set a user's password: their sessions end at once (this one too, when it is your own)."""
    app_state(request).accounts.set_password(name, body.password, actor=identity.actor)
    return Response(status_code=204)


@router.get("/tokens", response_model=TokensOut, responses=_errors())
def tokens(request: Request, identity: Admin) -> dict[str, Any]:
    return {"tokens": [token.to_json() for token in app_state(request).accounts.tokens()]}


@router.post("/tokens", status_code=201, response_model=TokenCreatedOut, responses=_errors(404))
def create_token(body: TokenIn, request: Request, identity: Admin) -> dict[str, Any]:
    """A token acting as `user`, never beyond the user's role nor the token's scope; shown this once."""
    info, secret = app_state(request).accounts.create_token(
        body.user, body.scope, expires_days=body.expires_days, name=body.name, actor=identity.actor
    )
    return {"token": secret, "info": info.to_json()}


@router.post("/tokens/{token_id}/revoke", status_code=204, responses=_errors(404))
def revoke_token(token_id: Annotated[int, Path(ge=1, le=INT64_MAX)], request: Request, identity: Admin) -> Response:
    """Revoke a token: it gets 401 from the next request on."""
    app_state(request).accounts.revoke_token(token_id, actor=identity.actor)
    return Response(status_code=204)


@router.get("/audit", response_model=AuditOut, responses=_errors())
def audit(
    request: Request,
    identity: Admin,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX, description="the `next` of the previous page")] = None,
) -> dict[str, Any]:
    """The audit trail, newest first: who cancelled, retried, enqueued, paused, and changed users and tokens."""
    entries = app_state(request).accounts.audit(limit=limit, before_id=before)
    return {
        "entries": [entry.to_json() for entry in entries],
        "next": entries[-1].id if len(entries) == limit else None,
    }
