"""The Driver: everything that differs between the databases, behind one interface.

SqlStore (sql.py) is written once against it, with the statements all three share. Each database has one file
that implements it: sqlite.py, postgresql.py, mysql.py (MariaDB and MySQL). Someone changing the PostgreSQL
claim, or adding a fourth database, works in one file; nothing outside the driver files branches on the
dialect. A driver module is imported only for its own URLs (a SQLite process never loads psycopg).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Select
from sqlalchemy.engine import URL
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import Lease, NewJob
from errands.store.base import Claim, Listener, Outcome

Callback = Callable[[str, str], None]  # (channel, payload)
OnError = Callable[[str], None]  # one line about a listener's failure, for the caller's error log


class Driver(Protocol):
    name: str  # SQLAlchemy's dialect name: "sqlite", "postgresql", "mysql"
    concurrent_writes: bool  # see Store.concurrent_writes
    # the claim and the completions read the database's clock inside their statement (now=None costs nothing)
    clock_in_statements: bool
    migrates_on_open: bool  # a database of a file: open_store migrates it on first use (a server's, on purpose)
    # exceptions the driver's own API raises outside SQLAlchemy (a raw cursor's COPY): they leave as StoreError
    raw_errors: tuple[type[BaseException], ...]

    def create_engine(self, url: URL) -> Engine: ...

    def transaction_options(self, *, one_statement: bool) -> dict[str, Any]:
        """Execution options for a transaction (one_statement: it is a single statement)."""
        ...

    def now(self, conn: Connection) -> datetime:
        """The database's clock (SQLite: this machine's), naive UTC."""
        ...

    def seconds_between(self, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
        """An expression: the seconds from one timestamp column to another (a job's duration)."""
        ...

    def insert_now(self, conn: Connection, new: NewJob, reserve: Lease | None) -> int:
        """Insert one job timed by the database's clock, waking idle workers if it is due; its id."""
        ...

    def insert_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert job_values rows; their ids, in order. The caller notifies."""
        ...

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        """Wake listeners at commit, where the database can (else nothing)."""
        ...

    def claim(self, conn: Connection, claim: Claim, limit: int, now: datetime | None) -> list[Any]:
        """Claim up to `limit` due jobs (claim.py's `due`, CLAIM_ORDER) and open their attempt rows; the rows
        after the claim, in any order. `now` None: the database's clock."""
        ...

    def begin_attempts(self, conn: Connection, claimed: Sequence[Any], worker: str, now: datetime) -> None:
        """The attempt rows of claimed jobs (rows or Jobs: their id and attempts), opened at `now`."""
        ...

    def complete(self, conn: Connection, outcomes: Sequence[Outcome], now: datetime | None) -> set[int]:
        """Record plain completions (completed, no follow-ups), each fenced in its UPDATE's WHERE by status
        running and the outcome's lease token; the ids recorded. `now` None: the database's clock."""
        ...

    def updated_ids(self, conn: Connection, stmt: Update, still: Sequence[Any]) -> set[int]:
        """Run an UPDATE of errands_jobs; the ids it changed. `still`: conditions its rows meet after it too,
        for a database that can't return them."""
        ...

    def lock_rows(self, stmt: Select[Any]) -> Select[Any]:
        """A SELECT of rows this transaction will update, locked where the database locks rows (skipping those
        another transaction holds)."""
        ...

    def listen(self, url: URL, callback: Callback, on_error: OnError, channels: Sequence[str] = ...) -> Listener | None:
        """A thread that calls back on these channels (default: enqueues and cancels, notify.py), or None where
        the caller must poll."""
        ...

    # accounts
    def rate_increment(self, conn: Connection, key: str, window_start: datetime) -> int:
        """Add one to the errands_rate_counters row (key, window_start), creating it at 1, in one atomic
        statement (concurrent hits from other replicas all count); the row's hits after it."""
        ...

    # reports (store/reports.py)
    def json_contains(self, column: ColumnElement[Any], candidate: str) -> ColumnElement[bool]:
        """Whether the JSON text in `column` contains the JSON `candidate` (jsonb's @> rules: an object its
        keys' values, an array each candidate element somewhere). PostgreSQL: through the GIN index."""
        ...

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        """The planner's row estimate for `table`, or None where there is none cheap enough to trust."""
        ...


_MODULES = {"sqlite": "errands.store.sqlite", "postgresql": "errands.store.postgresql", "mysql": "errands.store.mysql"}


def driver_for(url: URL) -> Driver:
    """The driver of a normalized URL (engine.normalize_url)."""
    module = importlib.import_module(_MODULES[url.get_backend_name()])
    driver: Driver = module.DRIVER
    return driver
