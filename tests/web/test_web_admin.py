"""Administration through the API: users, tokens, the audit trail (admin sessions only)."""

from __future__ import annotations

import pytest
from webapi import PASSWORD, Api

from errands.access import Role, Scope

pytestmark = pytest.mark.backends("sqlite", "postgresql")


def test_users_created_listed_changed_and_deleted(api: Api) -> None:
    admin = api.login(Role.ADMIN)
    created = admin.post("/api/users", json={"name": "bob", "role": "operator", "password": PASSWORD})
    assert created.status_code == 201 and created.json()["name"] == "bob" and created.json()["role"] == "operator"
    assert admin.post("/api/users", json={"name": "bob", "role": "viewer", "password": PASSWORD}).status_code == 409
    assert "bob" in [user["name"] for user in admin.get("/api/users").json()["users"]]

    bob = api.login(name="bob")
    changed = admin.post("/api/users/bob/password", json={"password": "another long password"})
    assert changed.status_code == 204
    assert bob.get("/api/auth/me").status_code == 401  # a new password ends the user's sessions
    bob = api.login(name="bob", password="another long password")
    assert admin.delete("/api/users/bob").status_code == 204
    assert bob.get("/api/auth/me").status_code == 401
    assert admin.delete("/api/users/bob").status_code == 404
    assert admin.post("/api/users/bob/password", json={"password": PASSWORD}).status_code == 404

    actions = [(e.action, e.subject, e.actor) for e in api.state.accounts.audit() if e.subject == "user bob"]
    assert [a for a, _, _ in actions] == ["user.delete", "user.passwd", "user.create"]
    assert {actor for _, _, actor in actions} == {admin.name}


def test_bad_users_are_4xx(api: Api) -> None:
    admin = api.login(Role.ADMIN)
    for body in (
        {"name": "bad name!", "role": "viewer", "password": PASSWORD},
        {"name": "short", "role": "viewer", "password": "short"},
        {"name": "x", "role": "superuser", "password": PASSWORD},
        {"name": "x", "role": "viewer", "password": PASSWORD, "extra": 1},
    ):
        answer = admin.post("/api/users", json=body)
        assert answer.status_code in (400, 422), body
        assert answer.json()["error"]


def test_tokens_shown_once_listed_without_secret_and_revoked(api: Api) -> None:
    admin = api.login(Role.ADMIN)
    user = api.user(Role.OPERATOR)
    created = admin.post("/api/tokens", json={"user": user, "scope": "read", "name": "ci", "expires_days": 1})
    assert created.status_code == 201
    secret, info = created.json()["token"], created.json()["info"]
    assert secret.startswith("errands_") and info["scope"] == "read" and info["expires_at"]
    listed = admin.get("/api/tokens")
    assert secret not in listed.text
    assert info["id"] in [token["id"] for token in listed.json()["tokens"]]
    script = api.client(headers={"Authorization": f"Bearer {secret}"})
    assert script.get("/api/auth/me").json() == {"user": user, "role": "operator", "scope": "read", "csrf_token": None}
    assert admin.post(f"/api/tokens/{info['id']}/revoke").status_code == 204
    assert script.get("/api/auth/me").status_code == 401
    assert admin.post("/api/tokens/999999/revoke").status_code == 404
    assert admin.post("/api/tokens", json={"user": "nobody", "scope": "read"}).status_code == 404


def test_the_audit_trail_pages_newest_first(api: Api) -> None:
    admin = api.login(Role.ADMIN)
    operator = api.bearer(Role.OPERATOR, Scope.OPERATE)
    ids = [
        operator.post("/api/jobs", json={"target": "examples.jobs:add", "args": [n, 1]}).json()["id"] for n in range(3)
    ]
    first = admin.get("/api/audit", params={"limit": 2}).json()
    assert [e["subject"] for e in first["entries"]] == [f"job {ids[2]}", f"job {ids[1]}"]
    assert first["entries"][0]["action"] == "job.enqueue" and first["entries"][0]["actor"].startswith(operator.name)
    rest = admin.get("/api/audit", params={"limit": 2, "before": first["next"]}).json()
    assert rest["entries"][0]["subject"] == f"job {ids[0]}"
    assert operator.get("/api/audit").status_code == 403
