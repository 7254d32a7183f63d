"""The PostgreSQL driver (psycopg 3): everything errands does differently on PostgreSQL.

The hot paths are one statement each, run as their own transaction (autocommit: no BEGIN/COMMIT round trips):
the claim (lock, update, attempt rows, clock), the batch of plain completions (over arrays), the insert of one
job (with its NOTIFY). A batch of jobs goes in by COPY in the binary format. Idle workers LISTEN.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import (
    Boolean,
    Connection,
    Double,
    Engine,
    Executable,
    Select,
    Text,
    bindparam,
    cast,
    create_engine,
    func,
    insert,
    select,
    type_coerce,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import URL
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import Lease, NewJob, dumps
from errands.store.base import Claim, Outcome
from errands.store.driver import Callback, OnError
from errands.store.insert import server_clock_insert, server_clock_params, wakes_workers
from errands.store.liveness import replace_stale_on_checkout, server_spoke
from errands.store.notify import CANCEL_CHANNEL, CHANGES_CHANNEL, JOBS_CHANNEL, deliver, report
from errands.store.schema import attempts, jobs, rate_counters

CONNECT_TIMEOUT_S = 10  # unless the URL says otherwise (?connect_timeout=N)


class PostgresDriver:
    name = "postgresql"
    concurrent_writes = True
    clock_in_statements = True
    migrates_on_open = False
    raw_errors: tuple[type[BaseException], ...] = (psycopg.Error,)

    def create_engine(self, url: URL) -> Engine:
        # libpq waits for an unreachable host as long as TCP does (minutes): a call fails sooner, and says so
        waits = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        engine = create_engine(url, connect_args=waits)
        replace_stale_on_checkout(engine, _stale)
        return engine

    def transaction_options(self, *, one_statement: bool) -> dict[str, Any]:
        # a single statement is its own transaction: autocommit saves the BEGIN and COMMIT round trips
        return {"isolation_level": "AUTOCOMMIT"} if one_statement else {}

    def now(self, conn: Connection) -> datetime:
        moment = conn.exec_driver_sql("SELECT now() AT TIME ZONE 'UTC'").scalar_one()
        return moment.replace(tzinfo=None)  # type: ignore[no-any-return]

    def seconds_between(self, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
        return type_coerce(func.extract("epoch", end - start), Double)

    def insert_now(self, conn: Connection, new: NewJob, reserve: Lease | None) -> int:
        params = server_clock_params(new, reserve, float(new.delay_s))
        return int(conn.execute(_insert_statement(wakes_workers(new, reserve)), params).scalar_one())

    def insert_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        return _copy_jobs(conn, rows)

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        # within the caller's transaction: delivered at commit, duplicates folded in one
        conn.execute(sql_text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload})

    def claim(self, conn: Connection, claim: Claim, limit: int, now: datetime | None) -> list[Any]:
        params = {
            "now": now,
            "any_queue": not claim.queues,
            "queues": list(claim.queues),
            "exclude": list(claim.exclude),
            "limit": limit,
            "owner": claim.owner,
            "token": claim.token,
            "lease_s": float(claim.lease_s),
            "worker": claim.worker,
        }
        return list(conn.execute(sql_text(_CLAIM), params))

    def begin_attempts(self, conn: Connection, claimed: Sequence[Any], worker: str, now: datetime) -> None:
        if claimed:
            begun = [{"job_id": j.id, "number": j.attempts, "started_at": now, "worker": worker} for j in claimed]
            conn.execute(insert(attempts), begun)

    def complete(self, conn: Connection, outcomes: Sequence[Outcome], now: datetime | None) -> set[int]:
        params = {
            "now": now,
            "ids": [o.job_id for o in outcomes],
            "tokens": [o.token for o in outcomes],
            "results": [dumps(o.result) for o in outcomes],
        }
        return {int(row.id) for row in conn.execute(sql_text(_COMPLETE), params)}

    def updated_ids(self, conn: Connection, stmt: Update, still: Sequence[Any]) -> set[int]:
        return set(conn.execute(stmt.returning(jobs.c.id)).scalars())

    def lock_rows(self, stmt: Select[Any]) -> Select[Any]:
        return stmt.with_for_update(skip_locked=True)

    def listen(
        self, url: URL, callback: Callback, on_error: OnError, channels: Sequence[str] = (JOBS_CHANNEL, CANCEL_CHANNEL)
    ) -> PgListener:
        return PgListener(url, callback, on_error, channels=channels).start()

    def rate_increment(self, conn: Connection, key: str, window_start: datetime) -> int:
        stmt = (
            postgresql.insert(rate_counters)
            .values(key=key, window_start=window_start, hits=1)
            .on_conflict_do_update(
                index_elements=[rate_counters.c.key, rate_counters.c.window_start],
                set_={"hits": rate_counters.c.hits + 1},
            )
            .returning(rate_counters.c.hits)
        )
        return int(conn.execute(stmt).scalar_one())

    def json_contains(self, column: ColumnElement[Any], candidate: str) -> ColumnElement[bool]:
        # the expression of the GIN indexes (schema.py): errands_jsonb is NULL for text jsonb refuses
        document = func.errands_jsonb(column, type_=postgresql.JSONB)
        # JSON text (not encoded again), written into the statement: a prepared statement's generic plan can't
        # see the value, and whether the GIN index or the newest rows serve it depends on how rare it is
        wanted = cast(bindparam(None, candidate, type_=Text, literal_execute=True), postgresql.JSONB)
        return document.op("@>", return_type=Boolean)(wanted)

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        # reltuples: -1 before the first VACUUM or ANALYZE (PostgreSQL 14+); to_regclass follows search_path
        stmt = sql_text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)")
        estimate = conn.execute(stmt, {"table": table}).scalar()
        return None if estimate is None or estimate < 0 else int(estimate)


DRIVER = PostgresDriver()


def _stale(conn: psycopg.Connection[Any]) -> bool:
    """Closed, broken, or told something while idle (a restart's 57P01, a terminated backend): liveness.py."""
    if conn.closed or conn.broken:
        return True
    try:
        return server_spoke(conn.pgconn.socket)
    except psycopg.OperationalError:  # libpq has no socket for it any more
        return True


# The claim in one statement, with one NOTIFY on errands_changes when it claimed any (a CTE over one of its
# rows: an uncorrelated subquery notified for an empty claim too). The picked ids go in as an array
# (`= ANY(ARRAY(...))`), so the update finds them by primary key: joined to a CTE instead, the planner hashed
# the whole table per claim. The clock is the
# database's (or the caller's, in tests); the commit needn't wait for its WAL flush (~2 ms here): if the
# server crashes before it, the claim is undone and the job is pending again, which at-least-once allows, and
# the durable commit of its completion flushes it anyway. set_config(..., true) lasts for this transaction.
# The conditions are claim.py's `due` (`exclude`: the paused queues; an empty array excludes nothing) and CLAIM_ORDER.
_CLAIM = """
WITH claimed AS (
    UPDATE errands_jobs j
    SET status = 'running', attempts = j.attempts + 1,
        started_at = COALESCE(:now, now() AT TIME ZONE 'UTC'), finished_at = NULL,
        lease_owner = :owner, lease_token = :token,
        lease_expires_at = COALESCE(:now, now() AT TIME ZONE 'UTC') + make_interval(secs => :lease_s),
        cancel_requested = false, changed_at = COALESCE(:now, now() AT TIME ZONE 'UTC')
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM errands_jobs
        WHERE status = 'pending'
          AND scheduled_at <= COALESCE(:now, now() AT TIME ZONE 'UTC')
          AND (lease_expires_at IS NULL OR lease_expires_at < COALESCE(:now, now() AT TIME ZONE 'UTC'))
          AND (CAST(:any_queue AS boolean) OR queue = ANY(CAST(:queues AS text[])))
          AND queue <> ALL(CAST(:exclude AS text[]))
        ORDER BY priority DESC, scheduled_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.*
), begun AS (
    INSERT INTO errands_attempts (job_id, number, started_at, worker)
    SELECT id, attempts, started_at, :worker FROM claimed
), noted AS (
    SELECT pg_notify('errands_changes', '') FROM (SELECT 1 FROM claimed LIMIT 1) one
)
SELECT claimed.* FROM claimed LEFT JOIN noted ON true
WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL
"""

# Plain completions in one statement over arrays: one round trip for the whole batch, one prepared statement
# whatever its size; the attempt rows closed are those of the jobs it completed.
_COMPLETE = """
WITH done AS (
    UPDATE errands_jobs j
    SET status = 'completed', finished_at = COALESCE(:now, now() AT TIME ZONE 'UTC'), result = v.result,
        changed_at = COALESCE(:now, now() AT TIME ZONE 'UTC'),
        error_type = NULL, error_message = NULL, error_traceback = NULL,
        lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS text[]), CAST(:results AS text[])) AS v(id, token, result)
    WHERE j.id = v.id AND j.status = 'running' AND j.lease_token = v.token
    RETURNING j.id, j.attempts, j.finished_at
), closed AS (
    UPDATE errands_attempts a SET finished_at = done.finished_at, outcome = 'completed'
    FROM done WHERE a.job_id = done.id AND a.number = done.attempts
), noted AS (
    SELECT pg_notify('errands_changes', '') FROM (SELECT 1 FROM done LIMIT 1) one
)
SELECT done.id FROM done LEFT JOIN noted ON true
"""


@cache
def _insert_statement(wake: bool) -> Executable:
    """The insert of one job on the database's clock, as its own statement, telling the change (pg_notify);
    with `wake`, it also wakes idle workers."""
    clock = func.timezone("UTC", func.now())
    delayed = clock + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("p_delay", type_=Double))
    inserted = server_clock_insert(clock, delayed).returning(jobs.c.id).cte("inserted")
    query = select(inserted.c.id, func.pg_notify(CHANGES_CHANNEL, ""))
    if wake:
        query = query.add_columns(func.pg_notify(JOBS_CHANNEL, bindparam("p_queue")))
    return query


# Bulk insert: COPY, with the ids taken from the sequence first (COPY returns nothing). A multi-row INSERT ...
# RETURNING of a few hundred jobs spends most of its time in the driver, parsing the one huge statement; COPY
# streams the rows instead. In COPY's binary format (the column types given up front) the server parses no
# text: 500 rows of 29 columns, ~100,000 -> ~135,000 rows/s on their own. A failed COPY raises psycopg's own
# errors (a raw cursor, not SQLAlchemy's): raw_errors makes them a StoreError like any other.
_COPY_COLUMNS = [column.name for column in jobs.columns if column.name != "id"]
_IN_COLUMN_ORDER = itemgetter(*_COPY_COLUMNS)
_COPIED = ["id", *_COPY_COLUMNS]
_QUOTED = ", ".join('"' + name + '"' for name in _COPIED)  # "then" is a reserved word
_COPY = f"COPY errands_jobs ({_QUOTED}) FROM STDIN (FORMAT BINARY)"
# the PostgreSQL type of each copied column, by a name psycopg knows ("VARCHAR(100)" -> "varchar")
_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_TYPES = [jobs.c[name].type.compile(dialect=_PG).split("(")[0].lower() for name in _COPIED]
# The sequence is looked up once (MATERIALIZED): as a plain expression pg_get_serial_sequence() ran per row,
# 7.3 us per id; this way 1.3 us (500 ids: 3.7 -> 0.7 ms).
_NEXT_IDS = """
WITH s AS MATERIALIZED (SELECT pg_get_serial_sequence('errands_jobs', 'id')::regclass AS seq)
SELECT nextval(s.seq) FROM s, generate_series(1, %s)
"""


def _copy_jobs(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert `rows` (job_values dicts) in this transaction; their ids, in order."""
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(_NEXT_IDS, (len(rows),))
        ids = sorted(int(row[0]) for row in cursor.fetchall())
        with cursor.copy(_COPY) as copy:
            copy.set_types(_TYPES)
            for job_id, row in zip(ids, rows, strict=True):
                copy.write_row((job_id, *_IN_COLUMN_ORDER(row)))
    return ids


class PgListener:
    """A dedicated autocommit connection on its own thread. A failed or lost connection is reported and
    reopened a second later; the callback then gets ("reconnect", "") so the worker polls once, in case it
    missed a notification meanwhile. A callback that raises is reported; the thread goes on."""

    def __init__(
        self,
        url: URL,
        callback: Callback,
        on_error: OnError,
        retry_s: float = 1.0,
        channels: Sequence[str] = (JOBS_CHANNEL, CANCEL_CHANNEL),
    ) -> None:
        self._channels = tuple(channels)
        self._conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._safe_url = url.render_as_string(hide_password=True)
        self._callback = callback
        self._on_error = on_error
        self._retry_s = retry_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="errands-listen", daemon=True)
        self._ready = threading.Event()
        self.backend_pid: int | None = None  # the server process of its current session

    def start(self, ready_timeout_s: float = 5.0) -> PgListener:
        self._thread.start()
        self._ready.wait(ready_timeout_s)
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception as exc:  # psycopg's, or anything else: the thread must outlive it
                first_line = (str(exc).strip().splitlines() or [""])[0]
                report(
                    self._on_error,
                    f"listener: LISTEN on {self._safe_url} failed ({type(exc).__name__}: {first_line}); "
                    f"reconnecting in {self._retry_s:g}s",
                )
                deliver(self._callback, self._on_error, "reconnect", "")
                self._stopped.wait(self._retry_s)

    def _listen(self) -> None:
        with psycopg.connect(self._conninfo, autocommit=True) as conn:
            for channel in self._channels:  # our own constants: names, not input
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self.backend_pid = conn.info.backend_pid
            self._ready.set()
            while not self._stopped.is_set():
                # a short timeout: stop() waits for it (a worker's exit, a test's teardown)
                for note in conn.notifies(timeout=0.1):
                    deliver(self._callback, self._on_error, note.channel, note.payload)
