"""Who may do what: roles, token scopes, the actions they permit, and the account values (pure).

A request acts as a user: through a session (the user's role) or an API token (the user's role, narrowed by the
token's scope; never beyond either). `permits` is the one rule every face asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from errands.clock import iso


class Role(StrEnum):
    VIEWER = "viewer"  # reads
    OPERATOR = "operator"  # also cancels, retries, enqueues, pauses queues
    ADMIN = "admin"  # also manages users and tokens


class Scope(StrEnum):
    READ = "read"
    OPERATE = "operate"


class Action(StrEnum):
    READ = "read"
    OPERATE = "operate"  # cancel, retry, enqueue, bulk, pause and resume
    ADMINISTER = "administer"  # users, tokens, the audit trail


_ROLE_ACTIONS = {
    Role.VIEWER: {Action.READ},
    Role.OPERATOR: {Action.READ, Action.OPERATE},
    Role.ADMIN: {Action.READ, Action.OPERATE, Action.ADMINISTER},
}
_SCOPE_ACTIONS = {
    Scope.READ: {Action.READ},
    Scope.OPERATE: {Action.READ, Action.OPERATE},
}


def permits(role: Role, scope: Scope | None, action: Action) -> bool:
    """May `role` (through a token of `scope`; None for a session) do `action`?"""
    if action not in _ROLE_ACTIONS[role]:
        return False
    return scope is None or action in _SCOPE_ACTIONS[scope]


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: Role
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The JSON of `errands users list --json` and GET /api/users."""
        return {"id": self.id, "name": self.name, "role": self.role.value, "created_at": iso(self.created_at)}


@dataclass(frozen=True)
class TokenInfo:
    """An API token as listed: never the token itself (only its hash is stored)."""

    id: int
    user: str
    name: str
    scope: Scope
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """The JSON of `errands tokens list --json` and GET /api/tokens."""
        return {
            "id": self.id,
            "user": self.user,
            "name": self.name,
            "scope": self.scope.value,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "last_used_at": iso(self.last_used_at),
            "revoked_at": iso(self.revoked_at),
        }


@dataclass(frozen=True)
class Identity:
    """Who a request acts as. `scope` None: a session; `session_id` None: a token."""

    user: User
    scope: Scope | None = None
    token_id: int | None = None
    session_id: str | None = None
    csrf_token: str | None = None  # the session's, for a cookie-authenticated unsafe request

    def may(self, action: Action) -> bool:
        return permits(self.user.role, self.scope, action)

    @property
    def actor(self) -> str:
        """How the audit trail names it: `alice` or `alice (token 3)`."""
        return self.user.name if self.token_id is None else f"{self.user.name} (token {self.token_id})"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str  # a user (or `user (token N)`), or `cli:<os user>` for the CLI
    action: str  # job.cancel, job.retry, job.enqueue, jobs.bulk_cancel, queue.pause, user.create, token.revoke, ...
    subject: str  # what it acted on: "job 42", "queue default", "user alice"
    detail: str  # one line, JSON or text

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "detail": self.detail,
        }
