"""The claim, per dialect: the one place whose SQL differs between backends.

PostgreSQL and MariaDB lock the due rows with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait on
or take each other's rows; SQLite has one writer, and the claim runs in a BEGIN IMMEDIATE transaction.
PostgreSQL and SQLite claim in one UPDATE ... RETURNING; MariaDB has no UPDATE ... RETURNING, so it locks
the ids, updates them and reads them back in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState
from errands.store.base import Claim
from errands.store.schema import jobs

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


def begin_claim(conn: Connection, now: datetime | None) -> datetime | None:
    """PostgreSQL: a claim's commit needn't wait for its WAL flush (~2 ms here): if the server crashes before
    it, the claim is undone and the job is pending again, which at-least-once allows, and the durable commit
    of its completion flushes it anyway. This transaction only; the same round trip reads the clock.
    Returns the database's time there, None elsewhere (the caller reads it its usual way)."""
    if conn.dialect.name != "postgresql":
        return now
    row = conn.exec_driver_sql("SELECT set_config('synchronous_commit', 'off', true), now() AT TIME ZONE 'UTC'").one()
    return now or row[1].replace(tzinfo=None)


def claim_due(conn: Connection, claim: Claim, limit: int, now: datetime) -> list[Any]:
    """Claim up to `limit` due jobs; returns their rows as they are after the claim (any order)."""
    picked = select(jobs.c.id).where(due(now, claim.queues)).order_by(*CLAIM_ORDER).limit(limit)
    dialect = conn.dialect.name
    if dialect == "postgresql":
        cte = picked.with_for_update(skip_locked=True).cte("picked")
        stmt = update(jobs).where(jobs.c.id == cte.c.id).values(running_values(claim, now)).returning(*jobs.c)
        return list(conn.execute(stmt))
    if dialect == "sqlite":
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
    return list(conn.execute(select(jobs).where(jobs.c.id.in_(ids))))
