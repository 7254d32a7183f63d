"""Plain completions' shared part (completed, no follow-ups: the worker's common case, written as a set).

Every driver fences each row in its UPDATE's WHERE: only a job still running under the outcome's lease token
is completed (complete() in postgresql.py, sqlite.py, mysql.py). PostgreSQL learns which rows it completed
from RETURNING; SQLite and MariaDB can't return rows from a batch update, so they first read (MariaDB: lock)
the rows that still carry their tokens, to report them, and to close only those attempts.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from errands.jobs import JobState
from errands.store.base import Outcome
from errands.store.schema import jobs


def still_leased(conn: Connection, outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Lock the outcomes' rows (where the database locks rows); those still running under the outcome's lease
    token."""
    locked = (
        select(jobs.c.id, jobs.c.lease_token)
        .where(jobs.c.id.in_([o.job_id for o in outcomes]), jobs.c.status == JobState.RUNNING.value)
        .with_for_update()
    )
    current = {(int(row.id), row.lease_token) for row in conn.execute(locked)}
    return [o for o in outcomes if (o.job_id, o.token) in current]
