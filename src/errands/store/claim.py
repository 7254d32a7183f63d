"""The claim, per dialect: the one place whose SQL differs between backends.

PostgreSQL and MariaDB lock the due rows with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait on
or take each other's rows; SQLite has one writer, and the claim runs in a BEGIN IMMEDIATE transaction.
PostgreSQL claims in one statement (lock, update, insert the attempt rows, read the database's clock, and
relax the commit's flush: one round trip and the commit); SQLite in one UPDATE ... RETURNING plus the attempt
rows; MariaDB has no UPDATE ... RETURNING, so it locks the ids, updates them and reads them back (a JSON array
per row) in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, literal, or_, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState
from errands.store.base import Claim
from errands.store.schema import attempts, jobs

CLAIM_ORDER = (jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)


def due(now: datetime, queues: Sequence[str]) -> ColumnElement[bool]:
    """Pending, due by `now`, and not reserved by a live lease (run-job, a detached process)."""
    conditions: list[ColumnElement[bool]] = [
        jobs.c.status == JobState.PENDING.value,
        jobs.c.scheduled_at <= now,
        or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now),
    ]
    if queues:
        conditions.append(jobs.c.queue.in_(list(queues)))
    return and_(*conditions)


def running_values(claim: Claim, now: datetime) -> dict[str, Any]:
    return {
        "status": JobState.RUNNING.value,
        "attempts": jobs.c.attempts + 1,
        "started_at": now,
        "finished_at": None,
        "lease_owner": claim.owner,
        "lease_token": claim.token,
        "lease_expires_at": now + timedelta(seconds=claim.lease_s),
        "cancel_requested": False,
    }


# PostgreSQL: the whole claim in one statement. The picked ids go in as an array (`= ANY(ARRAY(...))`), so
# the update finds them by primary key: joined to a CTE instead, the planner hashed the whole table per claim.
# The clock is the database's (or the caller's, in tests); the commit needn't wait for its WAL flush (~2 ms
# here): if the server crashes before it, the claim is undone and the job is pending again, which
# at-least-once allows, and the durable commit of its completion flushes it anyway. set_config(..., true)
# lasts for this transaction only.
_PG_CLAIM = """
WITH claimed AS (
    UPDATE errands_jobs j
    SET status = 'running', attempts = j.attempts + 1,
        started_at = COALESCE(:now, now() AT TIME ZONE 'UTC'), finished_at = NULL,
        lease_owner = :owner, lease_token = :token,
        lease_expires_at = COALESCE(:now, now() AT TIME ZONE 'UTC') + make_interval(secs => :lease_s),
        cancel_requested = false
    WHERE j.id = ANY(ARRAY(
        SELECT id FROM errands_jobs
        WHERE status = 'pending'
          AND scheduled_at <= COALESCE(:now, now() AT TIME ZONE 'UTC')
          AND (lease_expires_at IS NULL OR lease_expires_at < COALESCE(:now, now() AT TIME ZONE 'UTC'))
          AND (CAST(:any_queue AS boolean) OR queue = ANY(CAST(:queues AS text[])))
        ORDER BY priority DESC, scheduled_at, id
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ))
    RETURNING j.*
), begun AS (
    INSERT INTO errands_attempts (job_id, number, started_at, worker)
    SELECT id, attempts, started_at, :worker FROM claimed
)
SELECT claimed.* FROM claimed WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL
"""


def claim(conn: Connection, claim: Claim, limit: int, now: datetime | None) -> list[Any]:
    """Claim up to `limit` due jobs and open their attempt rows; returns the jobs' rows after the claim (any
    order). `now`: the time to claim at; None (PostgreSQL only) takes the database's clock in the statement."""
    if conn.dialect.name == "postgresql":
        params = {
            "now": now,
            "any_queue": not claim.queues,
            "queues": list(claim.queues),
            "limit": limit,
            "owner": claim.owner,
            "token": claim.token,
            "lease_s": float(claim.lease_s),
            "worker": claim.worker,
        }
        return list(conn.execute(text(_PG_CLAIM), params))
    assert now is not None, "only PostgreSQL reads its clock in the claim"
    rows = _claim_due(conn, claim, limit, now)
    begin_attempts(conn, rows, claim.worker, now)
    return rows


def begin_attempts(conn: Connection, claimed: Sequence[Any], worker: str, now: datetime) -> None:
    """The attempt rows of claimed jobs (rows or Jobs: their id and attempts), opened at `now`."""
    if claimed and conn.dialect.name == "mysql":  # PyMySQL formats an executemany row by row, in Python
        from_jobs = select(jobs.c.id, jobs.c.attempts, literal(now), literal(worker))
        source = from_jobs.where(jobs.c.id.in_([j.id for j in claimed]))
        conn.execute(insert(attempts).from_select(["job_id", "number", "started_at", "worker"], source))
    elif claimed:
        begun = [{"job_id": j.id, "number": j.attempts, "started_at": now, "worker": worker} for j in claimed]
        conn.execute(insert(attempts), begun)


def _claim_due(conn: Connection, claim: Claim, limit: int, now: datetime) -> list[Any]:
    picked = select(jobs.c.id).where(due(now, claim.queues)).order_by(*CLAIM_ORDER).limit(limit)
    if conn.dialect.name == "sqlite":
        stmt = (
            update(jobs)
            .where(jobs.c.id.in_(picked.scalar_subquery()))
            .values(running_values(claim, now))
            .returning(*jobs.c)
        )
        return list(conn.execute(stmt))
    # MariaDB: on a filesort plan FOR UPDATE locks every due row it reads, not the LIMIT it returns, and
    # other claimers then find nothing; the due index reads them in order and locks only what it takes.
    picked = picked.with_hint(jobs, "FORCE INDEX (ix_errands_jobs_due_mysql)", "mysql")
    ids = [row.id for row in conn.execute(picked.with_for_update(skip_locked=True))]
    if not ids:
        return []
    conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(running_values(claim, now)))
    return [_Unpacked(packed) for packed in conn.execute(select(_JOB_AS_JSON).where(jobs.c.id.in_(ids))).scalars()]


# MariaDB reads the claimed rows back: PyMySQL decodes each of a row's 29 columns in Python (~90 us a row);
# as one JSON array per row, json's C parser does it. With the attempt rows inserted from a SELECT, a claim
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
