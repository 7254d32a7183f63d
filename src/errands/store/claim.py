"""The claim's shared parts: which jobs are due, in what order, and what a claimed row becomes.

Each driver claims its own way (PostgreSQL in one statement, SQLite in one UPDATE ... RETURNING, MariaDB by
locking the ids first): see claim() in postgresql.py, sqlite.py, mysql.py. PostgreSQL and MariaDB lock the due
rows with FOR UPDATE SKIP LOCKED, so concurrent claimers never wait on or take each other's rows; SQLite has
one writer, and the claim runs in a BEGIN IMMEDIATE transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState
from errands.store.base import Claim
from errands.store.schema import jobs

CLAIM_ORDER = (jobs.c.priority.desc(), jobs.c.scheduled_at, jobs.c.id)


def due(now: datetime, queues: Sequence[str], exclude: Sequence[str] = ()) -> ColumnElement[bool]:
    """Pending, due by `now`, not reserved by a live lease (run-job, a detached process), in `queues` (all when
    empty) and not in `exclude` (the paused queues)."""
    conditions: list[ColumnElement[bool]] = [
        jobs.c.status == JobState.PENDING.value,
        jobs.c.scheduled_at <= now,
        or_(jobs.c.lease_expires_at.is_(None), jobs.c.lease_expires_at < now),
    ]
    if queues:
        conditions.append(jobs.c.queue.in_(list(queues)))
    if exclude:
        conditions.append(jobs.c.queue.not_in(list(exclude)))
    return and_(*conditions)


def next_due(claim: Claim, limit: int, now: datetime) -> Select[Any]:
    """The ids of the next `limit` due jobs in claim order."""
    return select(jobs.c.id).where(due(now, claim.queues, claim.exclude)).order_by(*CLAIM_ORDER).limit(limit)


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
        "changed_at": now,
    }
