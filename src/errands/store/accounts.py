"""AccountRows: the accounts' part of SqlStore (users, sessions, API tokens, rate-limit counters, the audit
trail, shared facts), written once for the three databases.

The one statement that differs, the rate counter's upsert-increment, is each driver's `rate_increment`. A
session or a token is only as alive as its user: every read joins errands_users, so a deleted user's sessions
and tokens stop at once even if a concurrent login or token insert slipped in around the delete.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, String, delete, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from errands.access import AuditEntry, Identity, Role, Scope, TokenInfo, User
from errands.errors import StoreError, TokenNotFound, UserExists, UserNotFound
from errands.store.base import Credentials, NewSession, NewToken, RateWindow
from errands.store.schema import Timestamp, audit, meta, rate_counters, sessions, tokens, users

if TYPE_CHECKING:
    from errands.store.driver import Driver

# last_seen_at (sessions) and last_used_at (tokens) move at most this often: a write a minute per busy
# session or token instead of one per request. A session's idle expiry is therefore up to this much early.
SESSION_TOUCH_S = 60.0
TOKEN_TOUCH_S = 60.0
_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


class AccountRows:
    """Mixed into SqlStore, whose transactions (`_tx`), clock (`_now`) and driver it uses."""

    if TYPE_CHECKING:
        driver: Driver

        def _tx(self, write: bool = True, *, one_statement: bool = False) -> AbstractContextManager[Connection]: ...

        def _now(self, conn: Connection, now: datetime | None) -> datetime: ...

    # users ------------------------------------------------------------------------------------------------

    def user_insert(self, name: str, role: Role, password_hash: str, *, now: datetime | None = None) -> User:
        try:
            with self._tx() as conn:
                moment = self._now(conn, now)
                values = {"name": name, "role": role.value, "password_hash": password_hash}
                key = conn.execute(insert(users).values(created_at=moment, updated_at=moment, **values))
                user_id = int(key.inserted_primary_key[0])  # type: ignore[index]
        except StoreError as exc:
            if _duplicate(exc):
                raise UserExists(name) from None
            raise
        return User(user_id, name, role, moment)

    def user_by_name(self, name: str) -> Credentials | None:
        with self._tx(write=False) as conn:
            row = conn.execute(select(users).where(users.c.name == name)).first()
        return None if row is None else Credentials(_user(row), row.password_hash)

    def user_get(self, user_id: int) -> User | None:
        with self._tx(write=False) as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return None if row is None else _user(row)

    def users_list(self) -> list[User]:
        with self._tx(write=False) as conn:
            return [_user(row) for row in conn.execute(select(users).order_by(users.c.name))]

    def user_set_password(self, name: str, password_hash: str, *, now: datetime | None = None) -> None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            user_id = _user_id(conn, name)
            conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash, updated_at=moment)
            )
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))

    def user_rehash(self, user_id: int, old_hash: str, new_hash: str) -> bool:
        stmt = (
            update(users)
            .where(users.c.id == user_id, users.c.password_hash == old_hash)
            .values(password_hash=new_hash)  # updated_at stays: the password did not change
        )
        with self._tx() as conn:
            return bool(conn.execute(stmt).rowcount == 1)

    def user_delete(self, name: str, *, now: datetime | None = None) -> None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            user_id = _user_id(conn, name)
            conn.execute(delete(sessions).where(sessions.c.user_id == user_id))
            live = (tokens.c.user_id == user_id, tokens.c.revoked_at.is_(None))
            conn.execute(update(tokens).where(*live).values(revoked_at=moment))
            conn.execute(delete(users).where(users.c.id == user_id))

    # sessions ---------------------------------------------------------------------------------------------

    def session_insert(self, session: NewSession, *, now: datetime | None = None) -> bool:
        """Insert it only while the user exists and still has `session.password_hash` (INSERT ... SELECT): a
        password changed or a user deleted while the login was verifying makes no session. Whether it did."""
        with self._tx() as conn:
            moment = self._now(conn, now)
            expires = moment + timedelta(seconds=session.max_age_s)
            source = select(
                literal(session.id, String),
                users.c.id,
                literal(session.csrf_token, String),
                literal(moment, Timestamp),
                literal(moment, Timestamp),
                literal(expires, Timestamp),
            ).where(users.c.id == session.user_id, users.c.password_hash == session.password_hash)
            columns = ["id", "user_id", "csrf_token", "created_at", "last_seen_at", "expires_at"]
            # an INSERT's rowcount is kept only on request (psycopg's closed cursor forgets it)
            stmt = insert(sessions).from_select(columns, source).execution_options(preserve_rowcount=True)
            return bool(conn.execute(stmt).rowcount == 1)

    def session_get(self, session_id: str, idle_s: float, *, now: datetime | None = None) -> Identity | None:
        stmt = (
            select(sessions.c.csrf_token, sessions.c.last_seen_at, sessions.c.expires_at, *users.c)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.id == session_id)
        )
        with self._tx(write=False) as conn:
            moment = self._now(conn, now)
            row = conn.execute(stmt).first()
        if row is None:
            return None
        if row.expires_at <= moment or row.last_seen_at + timedelta(seconds=idle_s) <= moment:
            self.session_delete(session_id)
            return None
        if moment - row.last_seen_at >= timedelta(seconds=SESSION_TOUCH_S):
            with self._tx() as conn:
                conn.execute(update(sessions).where(sessions.c.id == session_id).values(last_seen_at=moment))
        return Identity(_user(row), session_id=session_id, csrf_token=row.csrf_token)

    def session_delete(self, session_id: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(sessions).where(sessions.c.id == session_id))

    def sessions_prune(self, idle_s: float, *, now: datetime | None = None) -> int:
        with self._tx() as conn:
            moment = self._now(conn, now)
            dead = or_(sessions.c.expires_at <= moment, sessions.c.last_seen_at <= moment - timedelta(seconds=idle_s))
            return int(conn.execute(delete(sessions).where(dead)).rowcount)

    # API tokens -------------------------------------------------------------------------------------------

    def token_insert(self, new: NewToken, *, now: datetime | None = None) -> TokenInfo:
        with self._tx() as conn:
            moment = self._now(conn, now)
            owner = conn.execute(select(users.c.name).where(users.c.id == new.user_id)).scalar()
            if owner is None:
                raise UserNotFound(f"#{new.user_id}")
            expires = None if new.expires_in_s is None else moment + timedelta(seconds=new.expires_in_s)
            values = {"user_id": new.user_id, "name": new.name, "scope": new.scope.value, "token_hash": new.token_hash}
            key = conn.execute(insert(tokens).values(created_at=moment, expires_at=expires, **values))
            token_id = int(key.inserted_primary_key[0])  # type: ignore[index]
        return TokenInfo(token_id, str(owner), new.name, new.scope, moment, expires, None, None)

    def token_by_hash(self, token_hash: str, *, now: datetime | None = None) -> Identity | None:
        stmt = (
            select(tokens.c.id.label("token_id"), tokens.c.scope, tokens.c.expires_at, tokens.c.revoked_at)
            .add_columns(tokens.c.last_used_at, *users.c)
            .join(users, users.c.id == tokens.c.user_id)
            .where(tokens.c.token_hash == token_hash)
        )
        with self._tx(write=False) as conn:
            moment = self._now(conn, now)
            row = conn.execute(stmt).first()
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= moment):
            return None
        if row.last_used_at is None or moment - row.last_used_at >= timedelta(seconds=TOKEN_TOUCH_S):
            self.token_touch(row.token_id, now=moment)
        return Identity(_user(row), scope=Scope(row.scope), token_id=row.token_id)

    def tokens_list(self) -> list[TokenInfo]:
        with self._tx(write=False) as conn:
            return [_token(row) for row in conn.execute(_tokens_with_owner().order_by(tokens.c.id.desc()))]

    def token_revoke(self, token_id: int, *, now: datetime | None = None) -> TokenInfo:
        with self._tx() as conn:
            moment = self._now(conn, now)
            live = (tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            conn.execute(update(tokens).where(*live).values(revoked_at=moment))
            row = conn.execute(_tokens_with_owner().where(tokens.c.id == token_id)).first()
        if row is None:
            raise TokenNotFound(token_id)
        return _token(row)

    def token_touch(self, token_id: int, *, now: datetime | None = None) -> None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            touched = tokens.c.last_used_at
            stale = or_(touched.is_(None), touched <= moment - timedelta(seconds=TOKEN_TOUCH_S))
            conn.execute(update(tokens).where(tokens.c.id == token_id, stale).values(last_used_at=moment))

    # rate-limit counters ----------------------------------------------------------------------------------

    def rate_hit(self, key: str, window_s: float, *, now: datetime | None = None) -> RateWindow:
        with self._tx() as conn:
            start, remaining_s = _window(self._now(conn, now), window_s)
            hits = self.driver.rate_increment(conn, key, start)
        return RateWindow(hits, remaining_s)

    def rate_count(self, key: str, window_s: float, *, now: datetime | None = None) -> RateWindow:
        with self._tx(write=False) as conn:
            start, remaining_s = _window(self._now(conn, now), window_s)
            this_window = (rate_counters.c.key == key, rate_counters.c.window_start == start)
            hits = conn.execute(select(rate_counters.c.hits).where(*this_window)).scalar()
        return RateWindow(int(hits or 0), remaining_s)

    def rate_prune(self, window_s: float, *, now: datetime | None = None) -> int:
        with self._tx() as conn:
            start, _ = _window(self._now(conn, now), window_s)
            return int(conn.execute(delete(rate_counters).where(rate_counters.c.window_start < start)).rowcount)

    # the audit trail and shared facts ---------------------------------------------------------------------

    def audit_insert(self, actor: str, action: str, subject: str, detail: str, *, now: datetime | None = None) -> int:
        with self._tx() as conn:
            moment = self._now(conn, now)
            values = {"at": moment, "actor": actor, "action": action, "subject": subject, "detail": detail}
            key = conn.execute(insert(audit).values(values)).inserted_primary_key
            return int(key[0])  # type: ignore[index]

    def audit_list(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        stmt = select(audit).order_by(audit.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit.c.id < before_id)
        with self._tx(write=False) as conn:
            rows = list(conn.execute(stmt))
        return [AuditEntry(r.id, r.at, r.actor, r.action, r.subject, r.detail) for r in rows]

    def meta_get_or_insert(self, key: str, value: str) -> str:
        """Read, else insert in a transaction of its own, then read again in a new one: after a lost race the
        winner's row is committed, and a fresh transaction sees it (MariaDB's repeatable read would not show
        it to the transaction that read before the insert)."""
        stored = self._meta_get(key)
        if stored is not None:
            return stored
        try:
            with self._tx() as conn:
                conn.execute(insert(meta).values(key=key, value=value))
        except StoreError as exc:
            if not _duplicate(exc):
                raise
        stored = self._meta_get(key)
        if stored is None:  # inserted, or lost to a winner, yet gone: someone deleted it between
            raise StoreError(f"errands_meta lost its {key!r} row while it was being created")
        return stored

    def _meta_get(self, key: str) -> str | None:
        with self._tx(write=False) as conn:
            value = conn.execute(select(meta.c.value).where(meta.c.key == key)).scalar()
        return None if value is None else str(value)


def _duplicate(exc: StoreError) -> bool:
    return isinstance(exc.__cause__, IntegrityError)


def _user_id(conn: Connection, name: str) -> int:
    user_id = conn.execute(select(users.c.id).where(users.c.name == name)).scalar()
    if user_id is None:
        raise UserNotFound(name)
    return int(user_id)


def _user(row: Any) -> User:
    return User(int(row.id), row.name, Role(row.role), row.created_at)


def _tokens_with_owner() -> Any:
    """Tokens with their user's name; a deleted user's (revoked with it) show as `#<user id>`."""
    return select(tokens, users.c.name.label("owner")).outerjoin(users, users.c.id == tokens.c.user_id)


def _token(row: Any) -> TokenInfo:
    owner = row.owner if row.owner is not None else f"#{row.user_id}"
    return TokenInfo(
        int(row.id),
        owner,
        row.name,
        Scope(row.scope),
        row.created_at,
        row.expires_at,
        row.last_used_at,
        row.revoked_at,
    )


def _window(moment: datetime, window_s: float) -> tuple[datetime, float]:
    """The start of the fixed window holding `moment` (windows start at multiples of window_s since the
    epoch, in whole microseconds so every replica computes the same start), and the seconds left in it."""
    width = max(1, round(window_s * 1_000_000))
    elapsed = (moment - _EPOCH) // _MICROSECOND
    start = _EPOCH + (elapsed - elapsed % width) * _MICROSECOND
    return start, (start + width * _MICROSECOND - moment).total_seconds()
