"""Plain completions (completed, no follow-ups): the worker's common case, written as a set, per dialect.

Every row is fenced by its lease: only a job still running under the outcome's token is completed, and its
attempt row closed. PostgreSQL does both in one statement over arrays (one round trip for the whole batch, one
prepared statement whatever the batch size); MariaDB/MySQL lock the rows and check their tokens, then update
each table in one statement joined to the batch as JSON_TABLE (PyMySQL's executemany of an UPDATE is a round
trip per row); SQLite, in process, locks, checks and runs one executemany per table.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, text, update

from errands.jobs import AttemptOutcome, JobState, dumps
from errands.store.base import Finished, Outcome
from errands.store.schema import attempts, jobs

_PG_COMPLETE = """
WITH done AS (
    UPDATE errands_jobs j
    SET status = 'completed', finished_at = COALESCE(:now, now() AT TIME ZONE 'UTC'), result = v.result,
        error_type = NULL, error_message = NULL, error_traceback = NULL,
        lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
    FROM unnest(CAST(:ids AS bigint[]), CAST(:tokens AS text[]), CAST(:results AS text[])) AS v(id, token, result)
    WHERE j.id = v.id AND j.status = 'running' AND j.lease_token = v.token
    RETURNING j.id, j.attempts, j.finished_at
), closed AS (
    UPDATE errands_attempts a SET finished_at = done.finished_at, outcome = 'completed'
    FROM done WHERE a.job_id = done.id AND a.number = done.attempts
)
SELECT id FROM done
"""

_COMPLETE = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
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


def complete_plain(conn: Connection, outcomes: Sequence[Outcome], now: datetime | None) -> list[Finished]:
    """Record the completions; each Finished says whether its lease still held. `now`: None (PostgreSQL
    only) reads the database's clock in the statement."""
    if not outcomes:
        return []
    if conn.dialect.name == "postgresql":
        params = {
            "now": now,
            "ids": [o.job_id for o in outcomes],
            "tokens": [o.token for o in outcomes],
            "results": [dumps(o.result) for o in outcomes],
        }
        recorded = {int(row.id) for row in conn.execute(text(_PG_COMPLETE), params)}
    elif conn.dialect.name == "mysql":
        assert now is not None, "only PostgreSQL reads its clock in the statement"
        recorded = _complete_mysql(conn, outcomes, now)
    else:
        assert now is not None, "only PostgreSQL reads its clock in the statement"
        recorded = _complete_locked(conn, outcomes, now)
    return [Finished(o.job_id, recorded=o.job_id in recorded) for o in outcomes]


_MYSQL_COMPLETE = """
UPDATE errands_jobs j
JOIN JSON_TABLE(:batch, '$[*]' COLUMNS (id BIGINT PATH '$[0]', result LONGTEXT PATH '$[1]')) v ON j.id = v.id
SET j.status = 'completed', j.finished_at = :now, j.result = v.result,
    j.error_type = NULL, j.error_message = NULL, j.error_traceback = NULL,
    j.lease_owner = NULL, j.lease_token = NULL, j.lease_expires_at = NULL
"""
_MYSQL_CLOSE_ATTEMPTS = """
UPDATE errands_attempts a
JOIN JSON_TABLE(:batch, '$[*]' COLUMNS (job_id BIGINT PATH '$[0]', number INT PATH '$[1]')) v
  ON a.job_id = v.job_id AND a.number = v.number
SET a.finished_at = :now, a.outcome = 'completed'
"""


def _complete_mysql(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
    mine = _still_leased(conn, outcomes)
    if mine:
        jobs_batch = dumps([[o.job_id, dumps(o.result)] for o in mine])
        conn.execute(text(_MYSQL_COMPLETE), {"batch": jobs_batch, "now": now})
        attempts_batch = dumps([[o.job_id, o.attempt] for o in mine])
        conn.execute(text(_MYSQL_CLOSE_ATTEMPTS), {"batch": attempts_batch, "now": now})
    return {o.job_id for o in mine}


def _still_leased(conn: Connection, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Lock the outcomes' rows; those still running under the outcome's lease token."""
    locked = (
        select(jobs.c.id, jobs.c.lease_token)
        .where(jobs.c.id.in_([o.job_id for o in outcomes]), jobs.c.status == JobState.RUNNING.value)
        .with_for_update()
    )
    current = {(int(row.id), row.lease_token) for row in conn.execute(locked)}
    return [o for o in outcomes if (o.job_id, o.token) in current]


def _complete_locked(conn: Connection, outcomes: Sequence[Outcome], now: datetime) -> set[int]:
    mine = _still_leased(conn, outcomes)
    if mine:
        job_rows = [{"b_id": o.job_id, "b_result": dumps(o.result)} for o in mine]
        conn.execute(_COMPLETE.values(finished_at=now), job_rows)
        attempt_rows = [{"b_job_id": o.job_id, "b_number": o.attempt} for o in mine]
        conn.execute(_ATTEMPT_COMPLETED.values(finished_at=now), attempt_rows)
    return {o.job_id for o in mine}
