"""The MariaDB/MySQL driver (PyMySQL): everything errands does differently there.

No UPDATE ... RETURNING: a claim locks the due ids (FOR UPDATE SKIP LOCKED), updates them and reads them back
in the same transaction; completions lock their rows to learn which still carry their tokens. PyMySQL runs an
executemany of an UPDATE as a round trip per row, so batches go in as one JSON document, joined as a table
(JSON_TABLE). No NOTIFY either: idle workers poll.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Double,
    Engine,
    Select,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.engine import URL
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import Lease, NewJob, dumps
from errands.store.base import Claim, Listener, Outcome
from errands.store.claim import next_due, running_values
from errands.store.driver import Callback, OnError
from errands.store.finish import still_leased
from errands.store.insert import insert_row, server_clock_insert, server_clock_params
from errands.store.liveness import replace_stale_on_checkout, server_spoke
from errands.store.schema import attempts, jobs, rate_counters

_IN_TRANSACTION = 1  # MySQL protocol: SERVER_STATUS_IN_TRANS, in the status flags of every reply


class MysqlDriver:
    name = "mysql"
    concurrent_writes = True
    clock_in_statements = False
    migrates_on_open = False
    raw_errors: tuple[type[BaseException], ...] = ()

    def create_engine(self, url: URL) -> Engine:
        return _engine(url)

    def transaction_options(self, *, one_statement: bool) -> dict[str, Any]:
        return {}

    def now(self, conn: Connection) -> datetime:
        moment = conn.exec_driver_sql("SELECT UTC_TIMESTAMP(6)").scalar_one()
        return moment.replace(tzinfo=None)  # type: ignore[no-any-return]

    def seconds_between(self, start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[float]:
        return type_coerce(func.timestampdiff(text("MICROSECOND"), start, end) / 1_000_000.0, Double)

    def insert_now(self, conn: Connection, new: NewJob, reserve: Lease | None) -> int:
        # in microseconds: TIMESTAMPADD takes whole units
        params = server_clock_params(new, reserve, round(new.delay_s * 1_000_000))
        key = conn.execute(_INSERT_NOW, params).inserted_primary_key
        assert key is not None
        return int(key[0])

    def insert_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
        if not conn.dialect.insert_returning:  # MySQL, and MariaDB before 10.5
            return [insert_row(conn, row) for row in rows]
        stmt = insert(jobs).returning(jobs.c.id, sort_by_parameter_order=True)
        return [int(row.id) for row in conn.execute(stmt, rows)]

    def notify(self, conn: Connection, channel: str, payload: str) -> None:
        pass  # workers poll

    def claim(self, conn: Connection, claim: Claim, limit: int, now: datetime | None) -> list[Any]:
        moment = now or self.now(conn)
        # On a filesort plan FOR UPDATE locks every due row it reads, not the LIMIT it returns, and other
        # claimers then find nothing; the due index reads them in order and locks only what it takes.
        picked = next_due(claim, limit, moment).with_hint(jobs, "FORCE INDEX (ix_errands_jobs_due_mysql)", "mysql")
        ids = [row.id for row in conn.execute(picked.with_for_update(skip_locked=True))]
        if not ids:
            return []
        conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(running_values(claim, moment)))
        rows = [_Unpacked(packed) for packed in conn.execute(select(_JOB_AS_JSON).where(jobs.c.id.in_(ids))).scalars()]
        self.begin_attempts(conn, rows, claim.worker, moment)
        return rows

    def begin_attempts(self, conn: Connection, claimed: Sequence[Any], worker: str, now: datetime) -> None:
        if claimed:  # from a SELECT: PyMySQL formats an executemany row by row, in Python
            from_jobs = select(jobs.c.id, jobs.c.attempts, literal(now), literal(worker))
            source = from_jobs.where(jobs.c.id.in_([j.id for j in claimed]))
            conn.execute(insert(attempts).from_select(["job_id", "number", "started_at", "worker"], source))

    def complete(self, conn: Connection, outcomes: Sequence[Outcome], now: datetime | None) -> set[int]:
        moment = now or self.now(conn)
        mine = still_leased(conn, outcomes)
        if mine:
            jobs_batch = dumps([[o.job_id, o.token, dumps(o.result)] for o in mine])
            conn.execute(text(_COMPLETE), {"batch": jobs_batch, "now": moment})
            attempts_batch = dumps([[o.job_id, o.attempt] for o in mine])
            conn.execute(text(_CLOSE_ATTEMPTS), {"batch": attempts_batch, "now": moment})
        return {o.job_id for o in mine}

    def updated_ids(self, conn: Connection, stmt: Update, still: Sequence[Any]) -> set[int]:
        conn.execute(stmt)  # no UPDATE ... RETURNING: read back what this transaction now holds
        return set(conn.execute(select(jobs.c.id).where(*still)).scalars())

    def lock_rows(self, stmt: Select[Any]) -> Select[Any]:
        return stmt.with_for_update(skip_locked=True)

    def listen(self, url: URL, callback: Callback, on_error: OnError, channels: Sequence[str] = ()) -> Listener | None:
        return None

    def rate_increment(self, conn: Connection, key: str, window_start: datetime) -> int:
        """No RETURNING with ON DUPLICATE KEY UPDATE: the row is read back in the same transaction, which holds
        its lock since the upsert (and sees its own write), so the count is this hit's."""
        upsert = (
            mysql_insert(rate_counters)
            .values(key=key, window_start=window_start, hits=1)
            .on_duplicate_key_update(hits=rate_counters.c.hits + 1)
        )
        conn.execute(upsert)
        this = (rate_counters.c.key == key, rate_counters.c.window_start == window_start)
        return int(conn.execute(select(rate_counters.c.hits).where(*this)).scalar_one())

    def json_contains(self, column: ColumnElement[Any], candidate: str) -> ColumnElement[bool]:
        # not indexed: MariaDB has no index on a JSON document's values
        return func.JSON_CONTAINS(column, candidate) == 1

    def estimated_rows(self, conn: Connection, table: str) -> int | None:
        return None  # InnoDB's table_rows is off by up to half: exact counts instead


DRIVER = MysqlDriver()

_CLOCK = func.utc_timestamp(6)  # the statement's start: one moment for both columns
_INSERT_NOW = server_clock_insert(
    _CLOCK, func.timestampadd(literal_column("MICROSECOND"), bindparam("p_delay", type_=BigInteger), _CLOCK)
)

_COMPLETE = """
UPDATE errands_jobs j
JOIN JSON_TABLE(:batch, '$[*]' COLUMNS (
    id BIGINT PATH '$[0]', token VARCHAR(64) PATH '$[1]', result LONGTEXT PATH '$[2]'
)) v ON j.id = v.id
SET j.status = 'completed', j.finished_at = :now, j.changed_at = :now, j.result = v.result,
    j.error_type = NULL, j.error_message = NULL, j.error_traceback = NULL,
    j.lease_owner = NULL, j.lease_token = NULL, j.lease_expires_at = NULL
WHERE j.status = 'running' AND j.lease_token = v.token
"""
_CLOSE_ATTEMPTS = """
UPDATE errands_attempts a
JOIN JSON_TABLE(:batch, '$[*]' COLUMNS (job_id BIGINT PATH '$[0]', number INT PATH '$[1]')) v
  ON a.job_id = v.job_id AND a.number = v.number
SET a.finished_at = :now, a.outcome = 'completed'
"""

# The claimed rows are read back as one JSON array per row: PyMySQL decodes each of a row's 29 columns in
# Python (~90 us a row); json's C parser does it at once. With the attempt rows inserted from a SELECT, a claim
# of 800 took 154 -> 103-118 us per job here.
_JOB_AS_JSON = func.json_array(*jobs.columns)
_NAMES = [column.name for column in jobs.columns]
_TIMES = [column.name for column in jobs.columns if column.type.python_type is datetime]


class _Unpacked:
    """A row from its JSON array, read as a Row is: `row._mapping[name]` (job_from_row), `row.name`."""

    __slots__ = ("_mapping",)

    def __init__(self, packed: str) -> None:
        mapping = dict(zip(_NAMES, json.loads(packed), strict=True))
        for name in _TIMES:
            if mapping[name] is not None:
                mapping[name] = datetime.fromisoformat(mapping[name])
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


def _stale(conn: Any) -> bool:
    """Closed, or told something while idle (a KILL, wait_timeout, a shutdown): liveness.py. PyMySQL keeps its
    socket in `_sock` (None once closed): no public name gives it."""
    sock = getattr(conn, "_sock", None)
    return sock is None or server_spoke(sock.fileno())


def _engine(url: URL) -> Engine:
    # READ COMMITTED: fewer gap locks under SKIP LOCKED claims; UTC sessions so DB times are UTC
    engine = create_engine(
        url,
        isolation_level="READ COMMITTED",
        connect_args={"init_command": "SET time_zone = '+00:00'"},
        pool_reset_on_return=None,  # see _reset
    )

    replace_stale_on_checkout(engine, _stale)

    @event.listens_for(engine, "reset")
    def _reset(dbapi_conn: Any, _record: Any, state: Any) -> None:
        # The pool's own reset sends ROLLBACK whenever a connection comes back: on MariaDB a round trip per
        # transaction, though ours end in COMMIT or ROLLBACK already. The server says in every reply whether a
        # transaction is open; only then is there anything to roll back.
        if not state.terminate_only and dbapi_conn.server_status & _IN_TRANSACTION:
            dbapi_conn.rollback()

    return engine
