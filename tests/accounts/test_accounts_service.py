"""errands.accounts.Accounts against real databases: passwords, logins and their limits, sessions, tokens, audit."""

from __future__ import annotations

import hashlib
import re
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type

from errands.access import Action, Role, Scope, permits
from errands.accounts import (
    ARGON2_MEMORY_KIB,
    ARGON2_PARALLELISM,
    ARGON2_TIME_COST,
    TOKEN_PREFIX,
    Accounts,
)
from errands.errors import AuthFailed, InvalidInput, RateLimited, TokenNotFound, UserExists, UserNotFound
from errands.settings import Settings
from errands.store import SqlStore
from errands.store.schema import sessions, tokens, users

T0 = datetime(2026, 1, 1, 12, 0, 0)
PASSWORD = "correct horse battery"
ADDRESS = "192.0.2.1"
ACTOR = "cli:tester"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def settings_for(db_url: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "log_file": tmp_path / "jobs.log",
        "error_log_file": tmp_path / "errors.log",
        "login_rate_limit": 3,
        "session_idle": 600.0,
        "session_max": 3600.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def accounts(db_url: str, tmp_path: Path) -> Iterator[Accounts]:
    opened = Accounts.open(settings_for(db_url, tmp_path))
    yield opened
    opened.close()


def rows(db_url: str, table: sa.Table) -> list[sa.Row[tuple[object, ...]]]:
    store = SqlStore(db_url)
    try:
        with store.engine.connect() as conn:
            return list(conn.execute(sa.select(table)))
    finally:
        store.close()


# passwords ------------------------------------------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_passwords_are_argon2id_with_the_named_parameters(accounts: Accounts, db_url: str) -> None:
    accounts.create_user("alice", Role.ADMIN, PASSWORD, actor=ACTOR)
    [row] = rows(db_url, users)
    stored = str(row.password_hash)
    params = f"m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},p={ARGON2_PARALLELISM}"
    assert stored.startswith(f"$argon2id$v=19${params}$"), stored
    assert PASSWORD not in stored
    # OWASP's floor for Argon2id: at least 19 MiB with t=2 (or more memory with t=1)
    assert ARGON2_MEMORY_KIB >= 19 * 1024 and ARGON2_TIME_COST >= 2 and ARGON2_PARALLELISM >= 1


@pytest.mark.backends("sqlite")
def test_a_hash_under_old_parameters_is_redone_at_login(accounts: Accounts, db_url: str) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash(PASSWORD)
    store = SqlStore(db_url)
    try:
        store.user_insert("alice", Role.VIEWER, weak)
    finally:
        store.close()
    cookie, identity = accounts.login("alice", PASSWORD, address=ADDRESS)
    [row] = rows(db_url, users)
    assert str(row.password_hash).startswith(f"$argon2id$v=19$m={ARGON2_MEMORY_KIB},t={ARGON2_TIME_COST},")
    assert accounts.session(cookie) == identity  # the rehash kept the new session
    accounts.login("alice", PASSWORD, address=ADDRESS)  # and the password still works


@pytest.mark.backends("sqlite")
def test_names_and_passwords_are_checked(accounts: Accounts) -> None:
    for bad in ("", "x" * 101, "has space", "semi;colon", "ünï", "a/b"):
        with pytest.raises(InvalidInput, match="a user name is 1 to 100 of the characters"):
            accounts.create_user(bad, Role.VIEWER, PASSWORD, actor=ACTOR)
    for bad_password in ("short", "x" * 7, "x" * 1025):
        with pytest.raises(InvalidInput, match="a password is 8 to 1024 characters"):
            accounts.create_user("bob", Role.VIEWER, bad_password, actor=ACTOR)
    with pytest.raises(InvalidInput, match="valid Unicode"):
        accounts.create_user("bob", Role.VIEWER, "abc\udcffdefgh", actor=ACTOR)
    with pytest.raises(InvalidInput, match="role must be one of viewer, operator, admin"):
        accounts.create_user("bob", "root", PASSWORD, actor=ACTOR)  # type: ignore[arg-type]
    user = accounts.create_user("Bob.Smith@example-1_x", "operator", "x" * 1024, actor=ACTOR)  # type: ignore[arg-type]
    assert (user.name, user.role) == ("bob.smith@example-1_x", Role.OPERATOR)  # case-insensitive names
    with pytest.raises(UserExists, match=re.escape("user bob.smith@example-1_x exists already")):
        accounts.create_user("BOB.SMITH@example-1_x", Role.VIEWER, PASSWORD, actor=ACTOR)
    accounts.login("BOB.smith@EXAMPLE-1_x", "x" * 1024, address=ADDRESS)
    assert [u.name for u in accounts.users()] == ["bob.smith@example-1_x"]


# logins and sessions --------------------------------------------------------------------------------------


def test_login_gives_a_signed_cookie_whose_secret_the_database_never_holds(accounts: Accounts, db_url: str) -> None:
    alice = accounts.create_user("alice", Role.OPERATOR, PASSWORD, actor=ACTOR)
    cookie, identity = accounts.login("alice", PASSWORD, address=ADDRESS)
    secret, signature = cookie.split(".")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret) and re.fullmatch(r"[0-9a-f]{64}", signature)
    assert identity.user == alice and identity.scope is None and identity.token_id is None
    assert identity.csrf_token is not None and len(identity.csrf_token) == 43
    assert identity.may(Action.OPERATE) and not identity.may(Action.ADMINISTER)
    [row] = rows(db_url, sessions)
    assert row.id == hashlib.sha256(secret.encode()).hexdigest() == identity.session_id
    assert secret not in str(tuple(row))
    assert accounts.session(cookie) == identity

    again, second = accounts.login("alice", PASSWORD, address=ADDRESS)
    assert again != cookie and second.csrf_token != identity.csrf_token  # a new session and CSRF token per login


def test_failed_logins_all_say_the_same(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    attempts = [("alice", "wrong password"), ("nobody", PASSWORD), ("bad name!", PASSWORD), ("alice", "")]
    for name, password in attempts:
        with pytest.raises(AuthFailed) as refused:
            accounts.login(name, password, address=f"198.51.100.{len(name)}")
        assert str(refused.value) == "wrong username or password"
    with pytest.raises(AuthFailed):
        accounts.login("alice", "x" * 100_000, address="203.0.113.9")


@pytest.mark.backends("sqlite")
def test_an_unknown_user_costs_a_hash_verification_too(accounts: Accounts) -> None:
    """Timing: refusing an unknown name takes about as long as refusing a wrong password."""
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)

    def seconds(name: str, n: int) -> float:
        began = time.perf_counter()
        with pytest.raises(AuthFailed):
            accounts.login(name, "wrong password", address=f"198.51.100.{n}", now=at(n * 60))
        return time.perf_counter() - began

    seconds("ghost", 0)  # the decoy hash is made once
    known = statistics.median(seconds("alice", n) for n in range(1, 6))
    unknown = statistics.median(seconds("ghost", n) for n in range(6, 11))
    assert unknown > known * 0.4, f"unknown user refused in {unknown:.4f}s, wrong password in {known:.4f}s"


def test_failed_logins_are_limited_per_account_and_per_address(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    accounts.create_user("bob", Role.VIEWER, PASSWORD, actor=ACTOR)
    for n in range(3):  # login_rate_limit = 3, each from another address
        with pytest.raises(AuthFailed):
            accounts.login("alice", "wrong password", address=f"198.51.100.{n}", now=at(1))
    with pytest.raises(RateLimited) as limited:  # the right password too, from a fresh address
        accounts.login("alice", PASSWORD, address="198.51.100.99", now=at(15))
    assert 0 < limited.value.retry_after <= 60 and limited.value.retry_after == pytest.approx(45)
    accounts.login("bob", PASSWORD, address="198.51.100.99", now=at(15))  # another account is not limited
    accounts.login("alice", PASSWORD, address="198.51.100.99", now=at(60))  # the next minute

    for name in ("ghost1", "ghost2", "ghost3"):  # one address trying many accounts
        with pytest.raises(AuthFailed):
            accounts.login(name, "wrong password", address="203.0.113.5", now=at(120))
    with pytest.raises(RateLimited):
        accounts.login("bob", PASSWORD, address="203.0.113.5", now=at(121))
    accounts.login("bob", PASSWORD, address="203.0.113.6", now=at(121))


def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    start = threading.Barrier(8)

    def guess(n: int) -> str:
        start.wait(timeout=30)
        try:
            accounts.login("alice", f"guess {n}", address=f"198.51.100.{n}", now=at(1))
        except AuthFailed:
            return "refused"
        except RateLimited:
            return "limited"
        return "in"

    with ThreadPoolExecutor(8) as pool:
        outcomes = sorted(pool.map(guess, range(8)))
    assert outcomes == ["limited"] * 5 + ["refused"] * 3  # login_rate_limit = 3 failed logins a minute


@pytest.mark.backends("sqlite")
def test_successful_logins_are_not_limited(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    for _ in range(5):  # more than login_rate_limit
        accounts.login("alice", PASSWORD, address=ADDRESS, now=at(1))


def test_sessions_expire_idle_and_absolute(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)  # idle 600 s, max 3600 s
    busy, _ = accounts.login("alice", PASSWORD, address=ADDRESS, now=T0)
    idle, _ = accounts.login("alice", PASSWORD, address=ADDRESS, now=T0)
    for minute in range(1, 60):
        assert accounts.session(busy, now=at(minute * 60)) is not None, f"minute {minute}"
    assert accounts.session(idle, now=at(3540)) is None  # idle long ago
    assert accounts.session(busy, now=at(3600)) is None  # its absolute end, in use or not


def test_logout_ends_the_session_and_bad_cookies_are_nobody(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    cookie, _ = accounts.login("alice", PASSWORD, address=ADDRESS)
    secret, signature = cookie.split(".")
    other = "B" if secret.endswith("A") else "A"  # a secret ending in A made the "forgery" the cookie itself (1 in 64)
    forged = [
        f"{secret}.{'0' * 64}",
        f"{secret[:-1]}{other}.{signature}",
        secret,
        f"{secret}.{signature}.x",
        "",
        ".",
        "é" * 10,
        cookie + "x" * 300,
        None,
        42,
    ]
    for bad in forged:
        assert accounts.session(bad) is None, bad  # type: ignore[arg-type]
        accounts.logout(bad)  # type: ignore[arg-type]
    assert accounts.session(cookie) is not None  # none of them ended it
    accounts.logout(cookie)
    assert accounts.session(cookie) is None
    accounts.logout(cookie)  # twice is fine


def test_a_new_password_or_a_deleted_user_ends_sessions_at_once(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.OPERATOR, PASSWORD, actor=ACTOR)
    accounts.create_user("bob", Role.VIEWER, PASSWORD, actor=ACTOR)
    alice_cookie, _ = accounts.login("alice", PASSWORD, address=ADDRESS)
    bob_cookie, _ = accounts.login("bob", PASSWORD, address=ADDRESS)
    _, token = accounts.create_token("alice", Scope.READ, expires_days=None, name="ci", actor=ACTOR)
    accounts.set_password("alice", "a new password", actor=ACTOR)
    assert accounts.session(alice_cookie) is None
    assert accounts.token(token) is not None  # tokens are not sessions: they stay
    with pytest.raises(AuthFailed):
        accounts.login("alice", PASSWORD, address=ADDRESS)
    accounts.login("alice", "a new password", address=ADDRESS)

    accounts.delete_user("bob", actor=ACTOR)
    assert accounts.session(bob_cookie) is None
    accounts.delete_user("alice", actor=ACTOR)
    assert accounts.token(token) is None
    with pytest.raises(UserNotFound, match="user alice not found"):
        accounts.set_password("alice", PASSWORD, actor=ACTOR)
    with pytest.raises(UserNotFound):
        accounts.delete_user("alice", actor=ACTOR)


# API tokens -----------------------------------------------------------------------------------------------


def test_tokens_are_shown_once_and_stored_as_hashes(accounts: Accounts, db_url: str) -> None:
    accounts.create_user("alice", Role.OPERATOR, PASSWORD, actor=ACTOR)
    info, token = accounts.create_token("ALICE", Scope.OPERATE, expires_days=None, name="deploy", actor=ACTOR)
    assert re.fullmatch(rf"{TOKEN_PREFIX}[A-Za-z0-9_-]{{43}}", token)
    assert (info.user, info.name, info.scope, info.expires_at, info.revoked_at) == (
        "alice",
        "deploy",
        Scope.OPERATE,
        None,
        None,
    )
    [row] = rows(db_url, tokens)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(tuple(row))
    identity = accounts.token(token)
    assert identity is not None
    assert (identity.user.name, identity.scope, identity.token_id, identity.actor) == (
        "alice",
        Scope.OPERATE,
        info.id,
        f"alice (token {info.id})",
    )
    for bad in ("", token[:-1], token + "x", "Bearer " + token, token.upper(), "x" * 1000, None):
        assert accounts.token(bad) is None, bad  # type: ignore[arg-type]
    assert [t.id for t in accounts.tokens()] == [info.id]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("scope", list(Scope))
def test_a_token_never_goes_beyond_its_role_nor_its_scope(accounts: Accounts, role: Role, scope: Scope) -> None:
    accounts.create_user("someone", role, PASSWORD, actor=ACTOR)
    if role is Role.VIEWER and scope is Scope.OPERATE:
        with pytest.raises(InvalidInput, match="someone is a viewer: a token of scope operate would let it operate"):
            accounts.create_token("someone", scope, expires_days=None, name="", actor=ACTOR)
        return
    _, token = accounts.create_token("someone", scope, expires_days=None, name="", actor=ACTOR)
    identity = accounts.token(token)
    assert identity is not None
    for action in Action:
        allowed = permits(role, None, action) and permits(Role.ADMIN, scope, action)
        assert identity.may(action) is allowed, (role, scope, action)
    assert not identity.may(Action.ADMINISTER)  # no scope administers: users and tokens need a session


def test_revocation_and_expiry_take_effect_at_once(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
    kept, kept_token = accounts.create_token("alice", Scope.READ, expires_days=None, name="", actor=ACTOR)
    gone, gone_token = accounts.create_token("alice", Scope.READ, expires_days=None, name="", actor=ACTOR)
    _, brief_token = accounts.create_token("alice", Scope.READ, expires_days=0.5, name="", actor=ACTOR, now=T0)
    assert accounts.token(gone_token) is not None
    accounts.revoke_token(gone.id, actor=ACTOR)
    assert accounts.token(gone_token) is None
    assert accounts.token(kept_token) is not None
    accounts.revoke_token(gone.id, actor=ACTOR)  # again: no change, no error
    assert accounts.token(brief_token, now=at(43199)) is not None
    assert accounts.token(brief_token, now=at(43200)) is None
    for missing in (999_999, 0, -1, 2**63):
        with pytest.raises(TokenNotFound):
            accounts.revoke_token(missing, actor=ACTOR)
    with pytest.raises(InvalidInput):
        accounts.revoke_token("1", actor=ACTOR)  # type: ignore[arg-type]
    assert {t.id for t in accounts.tokens() if t.revoked_at is None} >= {kept.id}


@pytest.mark.backends("sqlite")
def test_token_arguments_are_checked(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.ADMIN, PASSWORD, actor=ACTOR)
    with pytest.raises(UserNotFound):
        accounts.create_token("nobody", Scope.READ, expires_days=None, name="", actor=ACTOR)
    for days in (0, -1, 3651, float("nan"), float("inf"), True):
        with pytest.raises(InvalidInput, match="at most 3650 days"):
            accounts.create_token("alice", Scope.READ, expires_days=days, name="", actor=ACTOR)
    for name in ("x" * 101, "tab\there", "nul\x00"):
        with pytest.raises(InvalidInput, match="at most 100 printable characters"):
            accounts.create_token("alice", Scope.READ, expires_days=None, name=name, actor=ACTOR)
    with pytest.raises(InvalidInput, match="scope must be one of read, operate"):
        accounts.create_token("alice", "admin", expires_days=None, name="", actor=ACTOR)  # type: ignore[arg-type]


# limits ---------------------------------------------------------------------------------------------------


def test_hits_are_limited_per_key_and_minute(accounts: Accounts) -> None:
    assert [accounts.hit("user:alice", 3, now=at(10)) for _ in range(3)] == [None, None, None]
    retry_after = accounts.hit("user:alice", 3, now=at(20))
    assert retry_after == pytest.approx(40.0)
    assert accounts.hit("user:bob", 3, now=at(20)) is None
    assert accounts.hit("user:alice", 3, now=at(60)) is None  # a new window
    long_key = "token:" + "é" * 500  # any key works: a long or non-ASCII one is hashed
    assert accounts.hit(long_key, 1, now=at(70)) is None
    assert accounts.hit(long_key, 1, now=at(70)) is not None


# audit and the secret key ---------------------------------------------------------------------------------


def test_user_and_token_actions_are_audited(accounts: Accounts) -> None:
    accounts.create_user("alice", Role.OPERATOR, PASSWORD, actor="cli:root")
    info, _ = accounts.create_token("alice", Scope.READ, expires_days=1, name="ci", actor="admin")
    accounts.revoke_token(info.id, actor="admin (token 9)")
    accounts.set_password("alice", "another password", actor="admin")
    accounts.delete_user("alice", actor="admin")
    accounts.record("bob", "job.cancel", "job 42")
    trail = [(e.actor, e.action, e.subject) for e in reversed(accounts.audit())]
    assert trail == [
        ("cli:root", "user.create", "user alice"),
        ("admin", "token.create", f"token {info.id}"),
        ("admin (token 9)", "token.revoke", f"token {info.id}"),
        ("admin", "user.passwd", "user alice"),
        ("admin", "user.delete", "user alice"),
        ("bob", "job.cancel", "job 42"),
    ]
    entries = accounts.audit()
    assert entries[-1].detail == "role operator" and "scope read" in entries[-2].detail
    assert PASSWORD not in str(entries) and "another password" not in str(entries)


@pytest.mark.backends("sqlite")
def test_audit_paging_and_odd_text(accounts: Accounts) -> None:
    accounts.record("x" * 1000, "a" * 100, "nul\x00 and \udcff", "d" * 10_000)
    ids = []
    for n in range(5):
        accounts.record("bob", "job.retry", f"job {n}")
        ids.append(accounts.audit(limit=1)[0].id)
    odd = accounts.audit(limit=100)[-1]
    assert len(odd.actor) == 255 and len(odd.action) == 64 and len(odd.detail) == 4000
    assert odd.subject == "nul\\x00 and \\udcff"
    assert [e.id for e in accounts.audit(limit=2, before_id=ids[3])] == [ids[2], ids[1]]
    assert accounts.audit(before_id=2**63) == [] and accounts.audit(before_id=0) == []
    for bad in (0, 1001, -1, True, "10"):
        with pytest.raises(InvalidInput, match="limit must be 1 to 1000"):
            accounts.audit(limit=bad)  # type: ignore[arg-type]


def test_replicas_share_the_generated_secret_key(db_url: str, tmp_path: Path) -> None:
    first = Accounts.open(settings_for(db_url, tmp_path))
    second = Accounts.open(settings_for(db_url, tmp_path))
    try:
        key = first.secret_key()
        assert len(key) >= 32 and second.secret_key() == key
        first.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
        cookie, identity = first.login("alice", PASSWORD, address=ADDRESS)
        assert second.session(cookie) == identity  # a cookie from one replica works on another
        second.logout(cookie)
        assert first.session(cookie) is None
    finally:
        first.close()
        second.close()


@pytest.mark.backends("sqlite")
def test_a_configured_secret_key_wins(db_url: str, tmp_path: Path) -> None:
    configured = Accounts.open(settings_for(db_url, tmp_path, secret_key="k" * 40))
    generated = Accounts.open(settings_for(db_url, tmp_path))
    try:
        assert configured.secret_key() == "k" * 40
        assert generated.secret_key() != "k" * 40
        configured.create_user("alice", Role.VIEWER, PASSWORD, actor=ACTOR)
        cookie, _ = configured.login("alice", PASSWORD, address=ADDRESS)
        assert configured.session(cookie) is not None
        assert generated.session(cookie) is None  # signed with another key: refused before any query
    finally:
        configured.close()
        generated.close()
