"""The Store conformance suite for accounts: users, sessions, tokens, rate counters, audit, meta, on every backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from errands.access import Role, Scope
from errands.errors import TokenNotFound, UserExists, UserNotFound
from errands.store import SqlStore
from errands.store.accounts import SESSION_TOUCH_S
from errands.store.base import NewSession, NewToken
from errands.store.schema import sessions, tokens

T0 = datetime(2026, 1, 1, 12, 0, 0)
IDLE_S = 1800.0


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def new_session(store: SqlStore, user_id: int, sid: str = "s1", max_age_s: float = 3600.0, now: datetime = T0) -> str:
    credentials = store.user_get(user_id)
    assert credentials is not None
    found = store.user_by_name(credentials.name)
    assert found is not None
    assert store.session_insert(NewSession(sid, user_id, f"csrf-{sid}", max_age_s, found.password_hash), now=now)
    return sid


def column(store: SqlStore, col: sa.Column[Any], where: Any) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(sa.select(col).where(where)).scalar()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in `count` threads released together; their results, or the first exception."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait(timeout=30)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


# users ----------------------------------------------------------------------------------------------------


def test_users_round_trip_and_names_are_unique(store: SqlStore) -> None:
    bob = store.user_insert("bob", Role.VIEWER, "hash-b", now=T0)
    alice = store.user_insert("alice", Role.ADMIN, "hash-a", now=at(1))
    assert (alice.name, alice.role, alice.created_at) == ("alice", Role.ADMIN, at(1))
    assert store.user_get(alice.id) == alice
    assert store.user_get(10**12) is None
    found = store.user_by_name("alice")
    assert found is not None and found.user == alice and found.password_hash == "hash-a"
    assert store.user_by_name("carol") is None
    assert store.users_list() == [alice, bob]
    with pytest.raises(UserExists, match="user alice exists already"):
        store.user_insert("alice", Role.VIEWER, "other")
    assert store.users_list() == [alice, bob]


def test_racing_inserts_of_one_name_make_one_user(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(4)]
    try:

        def insert(i: int) -> str:
            try:
                stores[i].user_insert("same", Role.VIEWER, f"hash-{i}")
                return "made"
            except UserExists:
                return "exists"

        assert sorted(in_threads(4, insert)) == ["exists", "exists", "exists", "made"]
        assert [user.name for user in stores[0].users_list()] == ["same"]
    finally:
        for opened in stores:
            opened.close()


def test_set_password_ends_the_users_sessions_only(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.ADMIN, "old", now=T0)
    bob = store.user_insert("bob", Role.VIEWER, "b", now=T0)
    new_session(store, alice.id, "a1")
    new_session(store, alice.id, "a2")
    new_session(store, bob.id, "b1")
    store.user_set_password("alice", "new", now=at(5))
    assert store.session_get("a1", IDLE_S, now=at(6)) is None
    assert store.session_get("a2", IDLE_S, now=at(6)) is None
    assert store.session_get("b1", IDLE_S, now=at(6)) is not None
    found = store.user_by_name("alice")
    assert found is not None and found.password_hash == "new"
    with pytest.raises(UserNotFound, match="user carol not found"):
        store.user_set_password("carol", "x")


def test_rehash_is_guarded_by_the_old_hash_and_keeps_sessions(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.ADMIN, "v1", now=T0)
    new_session(store, alice.id, "a1")
    assert not store.user_rehash(alice.id, "stale", "v2")
    assert store.user_rehash(alice.id, "v1", "v2")
    found = store.user_by_name("alice")
    assert found is not None and found.password_hash == "v2"
    assert store.session_get("a1", IDLE_S, now=at(1)) is not None


def test_delete_user_ends_sessions_and_revokes_tokens(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.OPERATOR, "h", now=T0)
    new_session(store, alice.id, "a1")
    info = store.token_insert(NewToken(alice.id, "ci", Scope.READ, "th-1", None), now=T0)
    assert store.token_by_hash("th-1", now=at(1)) is not None
    store.user_delete("alice", now=at(2))
    assert store.user_by_name("alice") is None
    assert store.session_get("a1", IDLE_S, now=at(3)) is None
    assert store.token_by_hash("th-1", now=at(3)) is None
    [listed] = store.tokens_list()
    assert listed.id == info.id and listed.user == f"#{alice.id}" and listed.revoked_at == at(2)
    with pytest.raises(UserNotFound):
        store.user_delete("alice")
    # a new user of the same name (SQLite may even reuse the id) does not bring the revoked token back
    store.user_insert("alice", Role.ADMIN, "h2", now=at(4))
    assert store.token_by_hash("th-1", now=at(5)) is None
    with pytest.raises(UserNotFound):
        store.token_insert(NewToken(10**9, "late", Scope.READ, "th-2", None))


# sessions -------------------------------------------------------------------------------------------------


def test_session_insert_needs_the_verified_hash(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.VIEWER, "h1", now=T0)
    assert not store.session_insert(NewSession("s-stale", alice.id, "c", 60.0, "h0"), now=T0)
    assert not store.session_insert(NewSession("s-gone", 10**9, "c", 60.0, "h1"), now=T0)
    assert store.session_insert(NewSession("s-ok", alice.id, "c", 60.0, "h1"), now=T0)
    identity = store.session_get("s-ok", IDLE_S, now=at(1))
    assert identity is not None
    assert (identity.user, identity.session_id, identity.csrf_token, identity.scope) == (alice, "s-ok", "c", None)
    assert store.session_get("s-stale", IDLE_S, now=at(1)) is None


def test_session_expires_when_idle_and_at_its_absolute_end(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.VIEWER, "h", now=T0)
    new_session(store, alice.id, "idle", max_age_s=7200.0)
    new_session(store, alice.id, "busy", max_age_s=7200.0)
    for minute in range(1, 120):  # "busy" is used every minute; "idle" never
        alive = store.session_get("busy", IDLE_S, now=at(minute * 60))
        assert alive is not None, f"busy session dead at minute {minute}"
        if minute * 60 >= IDLE_S:
            assert store.session_get("idle", IDLE_S, now=at(minute * 60)) is None
    assert store.session_get("busy", IDLE_S, now=at(7200)) is None  # the absolute end, busy or not
    assert column(store, sessions.c.id, sessions.c.id == "busy") is None  # an expired row is deleted


def test_session_touch_is_at_most_once_a_minute(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.VIEWER, "h", now=T0)
    new_session(store, alice.id, "s")
    seen = lambda: column(store, sessions.c.last_seen_at, sessions.c.id == "s")  # noqa: E731
    store.session_get("s", IDLE_S, now=at(SESSION_TOUCH_S - 1))
    assert seen() == T0
    store.session_get("s", IDLE_S, now=at(SESSION_TOUCH_S))
    assert seen() == at(SESSION_TOUCH_S)
    store.session_get("s", IDLE_S, now=at(SESSION_TOUCH_S + 30))
    assert seen() == at(SESSION_TOUCH_S)


def test_session_delete_and_prune(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.VIEWER, "h", now=T0)
    new_session(store, alice.id, "gone")
    new_session(store, alice.id, "old", max_age_s=100.0)
    new_session(store, alice.id, "idle", now=T0)
    new_session(store, alice.id, "fresh", now=at(IDLE_S))
    store.session_delete("gone")
    store.session_delete("never-was")
    assert store.session_get("gone", IDLE_S, now=at(1)) is None
    assert store.sessions_prune(IDLE_S, now=at(IDLE_S + 1)) == 2  # "old" past its end, "idle" idle
    assert store.session_get("fresh", IDLE_S, now=at(IDLE_S + 2)) is not None


# API tokens -----------------------------------------------------------------------------------------------


def test_tokens_insert_find_list_revoke(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.OPERATOR, "h", now=T0)
    forever = store.token_insert(NewToken(alice.id, "ci", Scope.OPERATE, "hash-1", None), now=T0)
    brief = store.token_insert(NewToken(alice.id, "", Scope.READ, "hash-2", 3600.0), now=at(1))
    assert (forever.user, forever.name, forever.scope, forever.expires_at) == ("alice", "ci", Scope.OPERATE, None)
    assert brief.expires_at == at(3601) and brief.last_used_at is None and brief.revoked_at is None
    assert [t.id for t in store.tokens_list()] == [brief.id, forever.id]

    identity = store.token_by_hash("hash-1", now=at(10))
    assert identity is not None
    assert (identity.user, identity.scope, identity.token_id, identity.session_id) == (
        alice,
        Scope.OPERATE,
        forever.id,
        None,
    )
    assert store.token_by_hash("nope", now=at(10)) is None
    assert store.token_by_hash("hash-2", now=at(3600)) is not None
    assert store.token_by_hash("hash-2", now=at(3601)) is None  # expired

    revoked = store.token_revoke(forever.id, now=at(20))
    assert revoked.revoked_at == at(20)
    assert store.token_by_hash("hash-1", now=at(21)) is None  # at once
    assert store.token_revoke(forever.id, now=at(30)).revoked_at == at(20)  # the first revocation stands
    with pytest.raises(TokenNotFound, match="token 999999 not found"):
        store.token_revoke(999999)


def test_token_use_is_touched_at_most_once_a_minute(store: SqlStore) -> None:
    alice = store.user_insert("alice", Role.VIEWER, "h", now=T0)
    info = store.token_insert(NewToken(alice.id, "", Scope.READ, "hash-1", None), now=T0)
    used = lambda: column(store, tokens.c.last_used_at, tokens.c.id == info.id)  # noqa: E731
    store.token_by_hash("hash-1", now=at(1))
    assert used() == at(1)
    store.token_by_hash("hash-1", now=at(59))
    assert used() == at(1)
    store.token_by_hash("hash-1", now=at(61))
    assert used() == at(61)
    assert store.tokens_list()[0].last_used_at == at(61)


# rate counters --------------------------------------------------------------------------------------------


def test_rate_hits_count_per_key_and_window(store: SqlStore) -> None:
    assert store.rate_count("k", 60, now=at(0.5)).hits == 0
    first = store.rate_hit("k", 60, now=at(0.5))
    assert first.hits == 1 and first.remaining_s == pytest.approx(59.5)
    assert store.rate_hit("k", 60, now=at(59.9)).hits == 2
    assert store.rate_hit("other", 60, now=at(30)).hits == 1
    assert store.rate_count("k", 60, now=at(10)).hits == 2
    fresh = store.rate_hit("k", 60, now=at(60))  # the next window
    assert fresh.hits == 1 and fresh.remaining_s == pytest.approx(60.0)
    assert store.rate_prune(60, now=at(61)) == 2  # both keys' first window
    assert store.rate_count("k", 60, now=at(61)).hits == 1


def test_concurrent_rate_hits_all_count(db_url: str) -> None:
    """The upsert-increment is atomic: four connections hitting one key at once lose none of the hits."""
    stores = [SqlStore(db_url) for _ in range(4)]
    try:
        moment = at(5)
        counts = in_threads(4, lambda i: [stores[i].rate_hit("hot", 60, now=moment).hits for _ in range(25)])
        seen = sorted(hits for batch in counts for hits in batch)
        assert seen == list(range(1, 101))  # each hit saw its own count: no two the same, none lost
        assert stores[0].rate_count("hot", 60, now=moment).hits == 100
    finally:
        for opened in stores:
            opened.close()


# audit and meta -------------------------------------------------------------------------------------------


def test_audit_is_listed_newest_first_with_keyset_paging(store: SqlStore) -> None:
    ids = [store.audit_insert("cli:root", "job.cancel", f"job {n}", "", now=at(n)) for n in range(5)]
    newest = store.audit_list(2)
    assert [e.id for e in newest] == [ids[4], ids[3]]
    assert (newest[0].actor, newest[0].action, newest[0].subject, newest[0].at) == (
        "cli:root",
        "job.cancel",
        "job 4",
        at(4),
    )
    assert [e.id for e in store.audit_list(10, before_id=ids[3])] == [ids[2], ids[1], ids[0]]
    assert store.audit_list(10, before_id=ids[0]) == []


def test_meta_get_or_insert_keeps_the_first_value(store: SqlStore) -> None:
    assert store.meta_get_or_insert("secret_key", "one") == "one"
    assert store.meta_get_or_insert("secret_key", "two") == "one"
    assert store.meta_get_or_insert("other", "x") == "x"


def test_meta_racing_replicas_agree_on_one_value(db_url: str) -> None:
    stores = [SqlStore(db_url) for _ in range(4)]
    try:
        values = in_threads(4, lambda i: stores[i].meta_get_or_insert("secret_key", f"candidate-{i}"))
        assert len(set(values)) == 1 and values[0].startswith("candidate-")
    finally:
        for opened in stores:
            opened.close()
