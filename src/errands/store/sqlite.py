"""The SQLite driver: everything errands does differently on SQLite.

One writer at a time: a write transaction takes the write lock up front (BEGIN IMMEDIATE), so rows need no
locks of their own, and a worker runs its writes one after another (concurrent_writes False). The clock is this
machine's. Idle workers watch the WAL file, which every commit appends to.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, bindparam, create_engine, event, func, insert, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import URL
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from errands.clock import utc_now
from errands.jobs import AttemptOutcome, JobState, Lease, NewJob, dumps
from errands.store.base import Claim, Outcome
from errands.store.claim import next_due, running_values
from errands.store.driver import Callback, OnError
from errands.store.finish import still_leased
from errands.store.insert import insert_row
from errands.store.notify import JOBS_CHANNEL, deliver
from errands.store.rows import job_values
from errands.store.schema import attempts, jobs, rate_counters

BUSY_TIMEOUT_S = 30


class SqliteDriver:
    name = "sqlite"
    concurrent_writes = False  # two write transactions of one process would only wait for each other
    clock_in_statements = False
    migrates_on_open = True
    raw_errors: tuple[type[BaseException], ...] = ()

    def create_engine(self, url: URL) -> Engine:
        return _engine(url)

    def transaction_options(self, *, one_statement: bool) -> dict[str, Any]:
        return {}

    def now(self, conn: Connection) -> datetime:
        return utc_now()

    def seconds_between(self, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
        # julianday() parses the stored text; a day's fraction as a double keeps ~10 us at today's dates
        return (func.julianday(end) - func.julianday(start)) * 86400.0

    def insert_now(self, conn: Connection, new: NewJob, reserve: Lease | None) -> int:
        return insert_row(conn, job_values(new, utc_now(), reserve))

    def insert_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        stmt = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
        return [int(row.id) for row in conn.execute(stmt, rows)]

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        pass  # the WAL watchers see the commit

    def claim(self, conn: Connection, claim: Claim, limit: int, now: datetime | None) -> list[Any]:
        moment = now or utc_now()
        stmt = (
            update(jobs)
            .where(jobs.c.id.in_(next_due(claim, limit, moment).scalar_subquery()))
            .values(running_values(claim, moment))
            .returning(*jobs.c)
        )
        rows = list(conn.execute(stmt))
        self.begin_attempts(conn, rows, claim.worker, moment)
        return rows

    def begin_attempts(self, conn: Connection, claimed: Sequence[Any], worker: str, now: datetime) -> None:
        if claimed:
            begun = [{"job_id": j.id, "number": j.attempts, "started_at": now, "worker": worker} for j in claimed]
            conn.execute(insert(attempts), begun)

    def complete(self, conn: Connection, outcomes: Sequence[Outcome], now: datetime | None) -> set[int]:
        """In process: one executemany per table, of the outcomes still leased (read first, to report them
        and close only their attempts); each UPDATE still names its token."""
        moment = now or utc_now()
        mine = still_leased(conn, outcomes)
        if mine:
            job_rows = [{"b_id": o.job_id, "b_token": o.token, "b_result": dumps(o.result)} for o in mine]
            conn.execute(_COMPLETE.values(finished_at=moment, changed_at=moment), job_rows)
            attempt_rows = [{"b_job_id": o.job_id, "b_number": o.attempt} for o in mine]
            conn.execute(_ATTEMPT_COMPLETED.values(finished_at=moment), attempt_rows)
        return {o.job_id for o in mine}

    def updated_ids(self, conn: Connection, stmt: Update, still: Sequence[Any]) -> set[int]:
        return set(conn.execute(stmt.returning(jobs.c.id)).scalars())

    def lock_rows(self, stmt: Select[Any]) -> Select[Any]:
        return stmt  # the write transaction holds the whole database

    def listen(
        self, url: URL, callback: Callback, on_error: OnError, channels: Sequence[str] = (JOBS_CHANNEL,)
    ) -> SqliteWalWatcher | None:
        # the WAL watch sees every commit: a wake-up for idle workers, too coarse to tell of a job's changes
        if not url.database or url.database == ":memory:" or JOBS_CHANNEL not in channels:
            return None
        return SqliteWalWatcher(os.path.abspath(url.database), callback, on_error).start()

    def rate_increment(self, conn: Connection, key: str, window_start: datetime) -> int:
        stmt = (
            sqlite_insert(rate_counters)
            .values(key=key, window_start=window_start, hits=1)
            .on_conflict_do_update(
                index_elements=[rate_counters.c.key, rate_counters.c.window_start],
                set_={"hits": rate_counters.c.hits + 1},
            )
            .returning(rate_counters.c.hits)
        )
        return int(conn.execute(stmt).scalar_one())

    def json_contains(self, column: ColumnElement[Any], candidate: str) -> ColumnElement[bool]:
        # errands_json_contains: registered on every connection (_engine), jsonb's rules in Python
        return func.errands_json_contains(column, candidate) == 1

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        return None


DRIVER = SqliteDriver()

_COMPLETE = (
    update(jobs)
    .where(
        jobs.c.id == bindparam("b_id"),
        jobs.c.status == JobState.RUNNING.value,
        jobs.c.lease_token == bindparam("b_token"),
    )
    .values(
        status=JobState.COMPLETED.value,
        result=bindparam("b_result"),
        error_type=None,
        error_message=None,
        error_traceback=None,
        lease_owner=None,
        lease_token=None,
        lease_expires_at=None,
    )
)
_ATTEMPT_COMPLETED = (
    update(attempts)
    .where(attempts.c.job_id == bindparam("b_job_id"), attempts.c.number == bindparam("b_number"))
    .values(outcome=AttemptOutcome.COMPLETED.value)
)


def _engine(url: URL) -> Engine:
    engine = create_engine(
        url,
        # the driver's own transaction handling is off; we emit BEGIN ourselves (see _begin)
        connect_args={"isolation_level": None, "check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        if url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        cursor.close()
        dbapi_conn.create_function("errands_json_contains", 2, _json_contains_sql, deterministic=True)

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # A write transaction takes the write lock up front (BEGIN IMMEDIATE): upgrading a read lock later
        # fails with SQLITE_BUSY at once instead of waiting on the busy timeout.
        write = conn.get_execution_options().get("errands_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class SqliteWalWatcher:
    """SQLite has no NOTIFY, but every commit appends to the database's WAL file: a thread that looks at the
    file's size and time every few milliseconds (a stat, no query) wakes idle workers soon after an enqueue
    commits. Changes by the worker's own writes wake it too, which costs one empty claim. A callback that
    raises is reported (on_error); the watch goes on."""

    def __init__(self, database: str, callback: Callback, on_error: OnError, interval_s: float = 0.005) -> None:
        self._wal = database + "-wal"
        self._callback = callback
        self._on_error = on_error
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errands-wal-watch", daemon=True)

    def start(self) -> SqliteWalWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self._wal)
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _run(self) -> None:
        last = self._stamp()
        while not self._stopped.wait(self._interval_s):
            now = self._stamp()
            if now != last:
                last = now
                deliver(self._callback, self._on_error, JOBS_CHANNEL, "")


def _json_contains_sql(document: str | None, candidate: str | None) -> int | None:
    """The args filter on SQLite: 1 when the JSON text `document` contains `candidate`, NULL for NULLs."""
    if document is None or candidate is None:
        return None
    try:
        return int(json_contains(json.loads(document), json.loads(candidate)))
    except ValueError:  # not JSON (errands writes only JSON): matches nothing
        return 0


def json_contains(document: Any, candidate: Any) -> bool:
    """PostgreSQL jsonb's containment (@>): an object contains an object whose every key it has with a
    contained value; an array contains an array whose every element is contained in one of its own; other
    values are equal (numbers by value, never a bool for a number)."""
    if isinstance(candidate, dict):
        return isinstance(document, dict) and all(
            key in document and json_contains(document[key], value) for key, value in candidate.items()
        )
    if isinstance(candidate, list):
        return isinstance(document, list) and all(
            any(json_contains(element, wanted) for element in document) for wanted in candidate
        )
    if isinstance(candidate, bool) or isinstance(document, bool):
        return type(candidate) is type(document) and candidate == document
    if isinstance(candidate, int | float) and isinstance(document, int | float):
        return candidate == document
    return type(candidate) is type(document) and candidate == document
