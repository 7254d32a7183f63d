"""One job in, in one statement, shared by the drivers: an INSERT built once and run with the job's values as
parameters.

Built per call with `.values(row)`, SQLAlchemy coerced each of the 28 values into a literal and hashed them into
the statement's cache key: ~400 us per enqueue, more than the insert itself. Where the database has a clock
(PostgreSQL, MariaDB) the row takes its times from it inside the statement (server_clock_insert, given the
driver's clock expressions), so no round trip asks for the time first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import Lease, NewJob
from errands.store.rows import job_values
from errands.store.schema import Timestamp, jobs

_SERVER_SET = ("created_at", "scheduled_at", "changed_at")  # from the database's clock, not from the row's values
_COLUMNS = [column for column in jobs.columns if column.name != "id" and column.name not in _SERVER_SET]


def wakes_workers(new: NewJob, reserve: Lease | None) -> bool:
    """Due at once and free for any worker: its insert tells idle workers (PostgreSQL's NOTIFY)."""
    return reserve is None and not new.delay_s and new.scheduled_at is None


def server_clock_insert(now: ColumnElement[Any], delayed: ColumnElement[Any]) -> Insert:
    """The INSERT of one job with created_at = changed_at = `now` and scheduled_at = the given one or `delayed` (an
    expression of `now` and the parameter p_delay); run it with server_clock_params."""
    values: dict[str, Any] = {column.name: bindparam(f"p_{column.name}", type_=column.type) for column in _COLUMNS}
    values["created_at"] = values["changed_at"] = now
    values["scheduled_at"] = func.coalesce(bindparam("p_scheduled_at", type_=Timestamp), delayed)
    return insert(jobs).values(values)


def server_clock_params(new: NewJob, reserve: Lease | None, delay: float) -> dict[str, Any]:
    """The parameters of server_clock_insert; `delay`: new.delay_s in the unit the driver's clock adds."""
    row = job_values(new, datetime.min, reserve)
    params = {f"p_{column.name}": row[column.name] for column in _COLUMNS}
    params["p_scheduled_at"] = new.scheduled_at
    params["p_delay"] = delay
    return params


def insert_row(conn: Connection, row: dict[str, Any]) -> int:
    """Insert `row` (job_values) as it is; its id."""
    key = conn.execute(insert(jobs), row).inserted_primary_key
    assert key is not None
    return int(key[0])
