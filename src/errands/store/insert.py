"""One job in, in one statement: an INSERT built once per backend and run with the job's values as parameters.

Built per call with `.values(row)`, SQLAlchemy coerced each of the 28 values into a literal and hashed them into
the statement's cache key: ~400 us per enqueue, more than the insert itself. Where the database has a clock
(PostgreSQL, MariaDB) the row takes its times from it inside the statement, so no round trip asks for the time
first; on PostgreSQL the same statement also wakes idle workers (pg_notify), and runs as its own transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Connection, Double, Executable, bindparam, func, insert, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import Lease, NewJob
from errands.store.notify import JOBS_CHANNEL
from errands.store.rows import job_values
from errands.store.schema import Timestamp, jobs

_SERVER_SET = ("created_at", "scheduled_at")  # from the database's clock, not from the row's values
_COLUMNS = [column for column in jobs.columns if column.name != "id" and column.name not in _SERVER_SET]


def _pg_clock() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    clock = func.timezone("UTC", func.now())
    return clock, clock + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("p_delay", type_=Double))


def _mysql_clock() -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    clock = func.utc_timestamp(6)  # the statement's start: one moment for both columns
    delay = bindparam("p_delay", type_=BigInteger)  # in microseconds: TIMESTAMPADD takes whole units
    return clock, func.timestampadd(literal_column("MICROSECOND"), delay, clock)


_CLOCKS: dict[str, Callable[[], tuple[ColumnElement[Any], ColumnElement[Any]]]] = {
    "postgresql": _pg_clock,
    "mysql": _mysql_clock,
}


def has_clock(dialect: str) -> bool:
    return dialect in _CLOCKS


def wakes_workers(new: NewJob, reserve: Lease | None) -> bool:
    """Due at once and free for any worker: its insert tells idle workers (PostgreSQL's NOTIFY)."""
    return reserve is None and not new.delay_s and new.scheduled_at is None


@cache
def _statement(dialect: str, wake: bool) -> Executable:
    now, delayed = _CLOCKS[dialect]()
    values: dict[str, Any] = {column.name: bindparam(f"p_{column.name}", type_=column.type) for column in _COLUMNS}
    values["created_at"] = now
    values["scheduled_at"] = func.coalesce(bindparam("p_scheduled_at", type_=Timestamp), delayed)
    stmt = insert(jobs).values(values)
    if dialect != "postgresql":
        return stmt
    inserted = stmt.returning(jobs.c.id).cte("inserted")
    query = select(inserted.c.id)
    if wake:
        query = query.add_columns(func.pg_notify(JOBS_CHANNEL, bindparam("p_queue")))
    return query


def insert_on_server_clock(conn: Connection, new: NewJob, reserve: Lease | None) -> int:
    """Insert `new` with created_at and scheduled_at (unless it was given one) from the database's clock; its
    id."""
    dialect = conn.dialect.name
    row = job_values(new, datetime.min, reserve)
    params = {f"p_{column.name}": row[column.name] for column in _COLUMNS}
    params["p_scheduled_at"] = new.scheduled_at
    params["p_delay"] = float(new.delay_s) if dialect == "postgresql" else round(new.delay_s * 1_000_000)
    result = conn.execute(_statement(dialect, wakes_workers(new, reserve)), params)
    if dialect == "postgresql":
        return int(result.scalar_one())
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def insert_row(conn: Connection, row: dict[str, Any]) -> int:
    """Insert `row` (job_values) as it is; its id."""
    key = conn.execute(insert(jobs), row).inserted_primary_key
    assert key is not None
    return int(key[0])
