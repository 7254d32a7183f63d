"""Accounts: users, sessions, API tokens, rate limits, the audit trail, and the key that signs sessions.

The web (every request's identity, login, limits, audit rows) and the CLI (users, tokens, audit rows) reach
them here; every piece of state is a database row (errands_users, _sessions, _tokens, _rate_counters, _audit,
_meta), so every web replica shares it.

Secrets never rest in the database: a password as its Argon2id hash, a session as the SHA-256 of its cookie's
secret part, an API token as its SHA-256 (256 random bits need no salt nor a slow hash). A session cookie is
`<secret>.<HMAC-SHA256 of it with secret_key()>`, so a forged one is refused without a query.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from datetime import datetime

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from errands.access import Action, AuditEntry, Identity, Role, Scope, TokenInfo, User, permits
from errands.clock import iso
from errands.errors import AuthFailed, InvalidInput, RateLimited, TokenNotFound, UserNotFound
from errands.settings import Settings
from errands.store import open_store
from errands.store.base import Credentials, NewSession, NewToken, Store

# Argon2id with OWASP's minimum (Password Storage Cheat Sheet: m=19 MiB, t=2, p=1): ~25 ms a hash on one core.
# A login spends one verification whatever happens; a hash under other parameters is redone at its next login.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_PARALLELISM = 1
ARGON2_HASH_BYTES = 32
ARGON2_SALT_BYTES = 16

USER_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,100}\Z")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
TOKEN_PREFIX = "errands_"
TOKEN_RANDOM_BYTES = 32
SESSION_RANDOM_BYTES = 32
MAX_TOKEN_DAYS = 3650.0
MAX_TOKEN_NAME = 100
MAX_CREDENTIAL = 256  # longer cookie or bearer values are refused before any work (ours are ~100 characters)
WINDOW_S = 60.0  # the limits' fixed window: a minute
MAX_RATE_KEY = 200  # longer keys are hashed (the column holds 255)
HOUSEKEEPING_S = 60.0  # old rate windows and dead sessions are deleted at most this often per process
MAX_AUDIT_PAGE = 1000
SECRET_KEY_META = "secret_key"
# the audit columns' lengths (schema.py; subject's too): longer text is cut, never refused (the action happened)
AUDIT_ACTOR = 255
AUDIT_ACTION = 64
AUDIT_DETAIL = 4000
_IDS = range(1, 2**63)


def password_hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST,
        memory_cost=ARGON2_MEMORY_KIB,
        parallelism=ARGON2_PARALLELISM,
        hash_len=ARGON2_HASH_BYTES,
        salt_len=ARGON2_SALT_BYTES,
        type=Type.ID,
    )


class Accounts:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self._store = store
        self._hasher = password_hasher()
        self._decoy_hash: str | None = None  # verified against for an unknown user: a login costs one hash always
        self._key: bytes | None = None
        self._housekept_at = -math.inf

    @classmethod
    def open(cls, settings: Settings) -> Accounts:
        """Accounts on a store of their own (close() closes it)."""
        return cls(settings, open_store(settings.database_url))

    def close(self) -> None:
        self._store.close()

    # users ------------------------------------------------------------------------------------------------

    def create_user(self, name: str, role: Role, password: str, *, actor: str) -> User:
        name, role = user_name(name), _role(role)
        user = self._store.user_insert(name, role, self._hasher.hash(check_password(password)))
        self.record(actor, "user.create", f"user {name}", f"role {role.value}")
        return user

    def users(self) -> list[User]:
        return self._store.users_list()

    def set_password(self, name: str, password: str, *, actor: str) -> None:
        """A new password; the user's sessions end at once (their tokens stay)."""
        name = user_name(name)
        self._store.user_set_password(name, self._hasher.hash(check_password(password)))
        self.record(actor, "user.passwd", f"user {name}")

    def delete_user(self, name: str, *, actor: str) -> None:
        """The user's sessions end and their tokens are revoked, at once."""
        name = user_name(name)
        self._store.user_delete(name)
        self.record(actor, "user.delete", f"user {name}")

    # sessions ---------------------------------------------------------------------------------------------

    def login(self, name: str, password: str, *, address: str, now: datetime | None = None) -> tuple[str, Identity]:
        """A new session for the right name and password: (the cookie's value, the identity). Raises AuthFailed
        (one message, whatever was wrong) or RateLimited: settings.login_rate_limit failed logins a minute per
        account and per client address, after which even the right password is refused until the minute ends."""
        keys = (_rate_key(f"login:user:{_folded(name)}"), _rate_key(f"login:address:{address}"))
        for key in keys:
            window = self._store.rate_count(key, WINDOW_S, now=now)
            if window.hits >= self.settings.login_rate_limit:
                raise RateLimited(window.remaining_s, "failed logins")
        found = self._store.user_by_name(_folded(name)) if _plausible_name(name) else None
        password_hash = self._verified(found, password)
        if found is None or password_hash is None:
            for key in keys:
                self._store.rate_hit(key, WINDOW_S, now=now)
            raise AuthFailed()
        secret = secrets.token_urlsafe(SESSION_RANDOM_BYTES)
        session = NewSession(
            id=_sha256(secret),
            user_id=found.user.id,
            csrf_token=secrets.token_urlsafe(SESSION_RANDOM_BYTES),
            max_age_s=self.settings.session_max,
            password_hash=password_hash,
        )
        if not self._store.session_insert(session, now=now):  # the password changed, or the user went, meanwhile
            raise AuthFailed()
        self._housekeeping(now)
        identity = Identity(found.user, session_id=session.id, csrf_token=session.csrf_token)
        return f"{secret}.{self._sign(secret)}", identity

    def session(self, cookie: str, *, now: datetime | None = None) -> Identity | None:
        """Who the cookie is: None when unknown, expired (idle or absolute), ended, or badly signed."""
        session_id = self._session_id(cookie)
        if session_id is None:
            return None
        return self._store.session_get(session_id, self.settings.session_idle, now=now)

    def logout(self, cookie: str) -> None:
        """End the session on the server: the cookie is refused from now on (by every replica)."""
        session_id = self._session_id(cookie)
        if session_id is not None:
            self._store.session_delete(session_id)

    # API tokens -------------------------------------------------------------------------------------------

    def create_token(
        self,
        user: str,
        scope: Scope,
        *,
        expires_days: float | None,
        name: str,
        actor: str,
        now: datetime | None = None,
    ) -> tuple[TokenInfo, str]:
        """A token acting as `user` within `scope` (never beyond the user's role: a scope the role lacks is
        refused); returned once, with its listing. Only its SHA-256 is stored."""
        owner, scope = user_name(user), _scope(scope)
        found = self._store.user_by_name(owner)
        if found is None:
            raise UserNotFound(owner)
        role = found.user.role  # what the scope allows (an admin is allowed all of it) that the role does not
        beyond = [a.value for a in Action if permits(Role.ADMIN, scope, a) and not permits(role, None, a)]
        if beyond:
            raise InvalidInput(
                f"user {owner} is a {role.value}: a token of scope {scope.value} would let it "
                f"{' and '.join(beyond)} (use scope read)"
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
        new = NewToken(found.user.id, _token_name(name), scope, _sha256(token), _expires_in_s(expires_days))
        info = self._store.token_insert(new, now=now)
        expires = iso(info.expires_at) if info.expires_at else "never"
        detail = f"user {owner}, scope {scope.value}, expires {expires}" + (f", name {info.name}" if info.name else "")
        self.record(actor, "token.create", f"token {info.id}", detail)
        return info, token

    def tokens(self) -> list[TokenInfo]:
        return self._store.tokens_list()

    def revoke_token(self, token_id: int, *, actor: str) -> None:
        """At once: the next request with it is refused. Revoking a revoked token changes nothing."""
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            raise InvalidInput(f"a token id is an int, got {type(token_id).__name__}")
        if token_id not in _IDS:
            raise TokenNotFound(token_id)
        info = self._store.token_revoke(token_id)
        self.record(actor, "token.revoke", f"token {token_id}", f"user {info.user}")

    def token(self, bearer: str, *, now: datetime | None = None) -> Identity | None:
        """Who the bearer token is: None when unknown, revoked, expired, or its user was deleted."""
        if not isinstance(bearer, str) or not bearer.startswith(TOKEN_PREFIX) or len(bearer) > MAX_CREDENTIAL:
            return None
        return self._store.token_by_hash(_sha256(bearer), now=now)

    # limits -----------------------------------------------------------------------------------------------

    def hit(self, key: str, limit_per_minute: int, *, now: datetime | None = None) -> float | None:
        """Count a request for `key` (an identity) in this minute's window: None while within the limit, else
        the seconds until the window ends (HTTP's Retry-After). Windows are shared by every replica."""
        window = self._store.rate_hit(_rate_key(key), WINDOW_S, now=now)
        self._housekeeping(now)
        return None if window.hits <= limit_per_minute else window.remaining_s

    # audit ------------------------------------------------------------------------------------------------

    def record(self, actor: str, action: str, subject: str, detail: str = "") -> None:
        """An audit row: who (`alice`, `alice (token 3)`, `cli:root`) did what (`job.cancel`) to what (`job 42`)."""
        self._store.audit_insert(
            _storable(actor, AUDIT_ACTOR),
            _storable(action, AUDIT_ACTION),
            _storable(subject, AUDIT_ACTOR),
            _storable(detail, AUDIT_DETAIL),
        )

    def audit(self, *, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
        """Newest first; `before_id` pages back (the last id of the previous page)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_AUDIT_PAGE:
            raise InvalidInput(f"limit must be 1 to {MAX_AUDIT_PAGE}, got {limit!r:.40}")
        if before_id is not None and (isinstance(before_id, bool) or not isinstance(before_id, int)):
            raise InvalidInput(f"before_id must be an int, got {before_id!r:.40}")
        if before_id is not None and before_id not in _IDS:
            return []
        return self._store.audit_list(limit, before_id)

    # the key that signs sessions --------------------------------------------------------------------------

    def secret_key(self) -> str:
        """settings.secret_key, else the key generated at the first start and kept in errands_meta (replicas
        that start at once agree on one)."""
        if self.settings.secret_key:
            return self.settings.secret_key
        return self._store.meta_get_or_insert(SECRET_KEY_META, secrets.token_urlsafe(48))

    # inside -----------------------------------------------------------------------------------------------

    def _verified(self, found: Credentials | None, password: str) -> str | None:
        """The hash the password matches (redone under the current parameters when they changed), or None.
        An unknown user's login verifies against a decoy: it takes as long as a known user's."""
        if found is None:
            if self._decoy_hash is None:
                self._decoy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            self._matches(self._decoy_hash, password)
            return None
        if not self._matches(found.password_hash, password):
            return None
        if not self._hasher.check_needs_rehash(found.password_hash):
            return found.password_hash
        new_hash = self._hasher.hash(password)
        if self._store.user_rehash(found.user.id, found.password_hash, new_hash):
            return new_hash
        return found.password_hash  # changed meanwhile: the session insert, guarded by the hash, refuses

    def _matches(self, password_hash: str, password: str) -> bool:
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            password = ""  # still one verification: the refusal takes as long as any other
        try:
            return bool(self._hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            return False

    def _sign(self, secret: str) -> str:
        if self._key is None:
            self._key = self.secret_key().encode("utf-8")
        return hmac.new(self._key, secret.encode("ascii"), hashlib.sha256).hexdigest()

    def _session_id(self, cookie: str) -> str | None:
        """The session row's id for a well-signed cookie, else None."""
        if not isinstance(cookie, str) or len(cookie) > MAX_CREDENTIAL or not cookie.isascii():
            return None
        secret, _, signature = cookie.partition(".")
        if not secret or not hmac.compare_digest(signature, self._sign(secret)):
            return None
        return _sha256(secret)

    def _housekeeping(self, now: datetime | None) -> None:
        """Delete old rate windows and dead sessions, at most once a minute per process."""
        if time.monotonic() - self._housekept_at < HOUSEKEEPING_S:
            return
        self._housekept_at = time.monotonic()
        self._store.rate_prune(WINDOW_S, now=now)
        self._store.sessions_prune(self.settings.session_idle, now=now)


def user_name(name: str) -> str:
    """A user name as stored: 1-100 of [A-Za-z0-9_.@-], folded to lower case (names are case-insensitive on
    every backend, as MariaDB's collation makes them anyway)."""
    if not _plausible_name(name):
        raise InvalidInput(f"a user name is 1 to 100 of the characters A-Z a-z 0-9 _ . @ -, got {name!r:.120}")
    return name.lower()


def check_password(password: str) -> str:
    if not isinstance(password, str):
        raise InvalidInput(f"a password is text, got {type(password).__name__}")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(f"a password is {MIN_PASSWORD} to {MAX_PASSWORD} characters, got {len(password)}")
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("a password must be valid Unicode (no lone surrogates)") from None
    return password


def _plausible_name(name: object) -> bool:
    return isinstance(name, str) and USER_NAME.match(name) is not None


def _folded(name: object) -> str:
    return name.lower() if isinstance(name, str) else repr(name)


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}, got {role!r:.40}") from None


def _scope(scope: Scope | str) -> Scope:
    try:
        return Scope(scope)
    except ValueError:
        raise InvalidInput(f"scope must be one of {', '.join(s.value for s in Scope)}, got {scope!r:.40}") from None


def _token_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_TOKEN_NAME or not name.isprintable():
        raise InvalidInput(f"a token's name is at most {MAX_TOKEN_NAME} printable characters, got {name!r:.120}")
    return name


def _expires_in_s(days: float | None) -> float | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int | float) or not 0 < days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"a token expires after more than 0 and at most {MAX_TOKEN_DAYS:.0f} days, got {days!r}")
    return float(days) * 86400.0


def _rate_key(key: str) -> str:
    """The counter's key: as given when short and printable, else a digest (any length, any text, one row)."""
    if len(key) <= MAX_RATE_KEY and key.isascii() and key.isprintable():
        return key
    return "sha256:" + _sha256(key)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _storable(value: object, limit: int) -> str:
    """Text every backend stores: NUL (PostgreSQL refuses it) and lone surrogates escaped, cut to `limit`."""
    text = str(value).replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"
