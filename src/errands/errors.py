"""The errands exception tree.

    ErrandsError
    ├── ConfigError(key)                 a bad config file or value
    ├── StoreError                       the database failed (driver error as __cause__)
    │   ├── NotMigrated                  the schema is missing or behind: run `errands migrate`
    │   └── StoreUnavailable             the database can't be reached, or the connection dropped
    ├── InvalidInput                     bad arguments from a caller (CLI, API, Python)
    │   ├── TargetNotAllowed(target, method)
    │   ├── AuthFailed                   wrong username or password (one message for both)
    │   └── UserExists(name)             a user of that name exists already
    ├── JobNotFound(job_id)
    ├── InvalidTransition(job_id, from_, to)
    ├── BulkRunNotFound(run_id)
    ├── UserNotFound(name)
    ├── TokenNotFound(token_id)
    └── RateLimited(retry_after)         too many requests (or failed logins) this minute

Each carries the context a caller needs to render one clear line; the CLI maps them to exit codes.
"""

from __future__ import annotations

import math


class ErrandsError(Exception):
    """Base of every error errands raises on purpose."""


class ConfigError(ErrandsError):
    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config {key}: {problem}")
        self.key = key
        self.problem = problem


class StoreError(ErrandsError):
    """The database failed; the driver's exception is the __cause__."""


class NotMigrated(StoreError):
    def __init__(self, url: str) -> None:
        super().__init__(f"the database at {url} has no errands schema or an old one: run `errands migrate`")


class StoreUnavailable(StoreError):
    """The database can't be reached, or the connection dropped: transient (a restart, a failover, a network
    cut). The store reconnects by itself on a later call once the database answers again; the API answers 503.
    A connection lost while a transaction committed leaves its outcome unknown: the message says so."""


class InvalidInput(ErrandsError):
    """A caller passed something errands cannot accept."""


class TargetNotAllowed(InvalidInput):
    def __init__(self, target: str, method: str, reason: str = "not in allowed_jobs") -> None:
        shown = f"{target}::{method}" if method else target
        super().__init__(f"refused {shown}: {reason}")
        self.target = target
        self.method = method
        self.reason = reason


class JobNotFound(ErrandsError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidTransition(ErrandsError):
    def __init__(self, job_id: int, from_: str, to: str) -> None:
        super().__init__(f"job {job_id} is {from_}: it cannot become {to}")
        self.job_id = job_id
        self.from_ = from_
        self.to = to


class AuthFailed(InvalidInput):
    """A login that failed. One message whatever was wrong, so it tells nobody which user names exist."""

    def __init__(self) -> None:
        super().__init__("wrong username or password")


class UserExists(InvalidInput):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name} exists already")
        self.name = name


class UserNotFound(ErrandsError):
    def __init__(self, name: str) -> None:
        super().__init__(f"user {name} not found")
        self.name = name


class TokenNotFound(ErrandsError):
    def __init__(self, token_id: int) -> None:
        super().__init__(f"token {token_id} not found")
        self.token_id = token_id


class RateLimited(ErrandsError):
    """Over a limit for this window; `retry_after` seconds until the window ends (HTTP's Retry-After)."""

    def __init__(self, retry_after: float, what: str = "requests") -> None:
        super().__init__(f"too many {what}: try again in {math.ceil(retry_after)} s")
        self.retry_after = retry_after


class BulkRunNotFound(ErrandsError):
    def __init__(self, run_id: int) -> None:
        super().__init__(f"bulk run {run_id} not found")
        self.run_id = run_id
