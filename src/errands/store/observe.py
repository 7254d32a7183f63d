"""What the HTTP API's health and metrics read: a round trip for readiness, and the recently finished jobs
(their durations and attempts) for /metrics. A mixin of SqlStore (sql.py): it uses SqlStore's `_tx`, `_now`
and `driver`."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, func, select, text
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState
from errands.reports import RecentFinishes
from errands.store.schema import attempts, jobs

if TYPE_CHECKING:
    from errands.store.driver import Driver

_RAN = (JobState.COMPLETED.value, JobState.FAILED.value)  # cancelled jobs may never have run: not a duration
# the attempts of at most this many of the window's jobs are counted (a minute of a very busy queue)
MAX_JOBS = 20_000
_ID_CHUNK = 1000


class ObserveRows:
    driver: Driver

    if TYPE_CHECKING:

        def _tx(self, write: bool = True, *, one_statement: bool = False) -> AbstractContextManager[Connection]: ...

        def _now(self, conn: Connection, now: datetime | None) -> datetime: ...

    def database_ping(self) -> None:
        """One round trip to the database (a fresh connection if the pool holds none); raises StoreError."""
        with self._tx(write=False) as conn:
            conn.execute(text("SELECT 1")).scalar_one()

    def jobs_finished_recently(
        self, window_s: float, bounds: Sequence[float], *, now: datetime | None = None
    ) -> RecentFinishes:
        """Completed and failed jobs whose finished_at is within `window_s` of now: a histogram of their last
        attempt's duration over `bounds` (ascending seconds), and the attempts of (at most MAX_JOBS of) them by
        outcome. Reads only the window's rows where finished_at is indexed (PostgreSQL's BRIN); locks nothing."""
        with self._tx(write=False) as conn:
            since = self._now(conn, now) - timedelta(seconds=window_s)
            recent = (jobs.c.finished_at >= since) & jobs.c.status.in_(_RAN) & jobs.c.started_at.is_not(None)
            durations = self._durations(conn, recent, bounds)
            by_attempt = _attempts_of(
                conn, [row.id for row in conn.execute(select(jobs.c.id).where(recent).limit(MAX_JOBS))]
            )
        count, sum_s, completed, failed, *buckets = durations
        return RecentFinishes(
            window_s=window_s,
            bounds=tuple(bounds),
            buckets=tuple(int(n or 0) for n in buckets),
            count=int(count or 0),
            sum_s=float(sum_s or 0.0),
            by_status={JobState.COMPLETED.value: int(completed or 0), JobState.FAILED.value: int(failed or 0)},
            attempts=by_attempt,
        )

    def _durations(self, conn: Connection, recent: ColumnElement[bool], bounds: Sequence[float]) -> Sequence[Any]:
        """One row: count, sum of seconds, completed, failed, then one cumulative count per bound."""
        seconds = self.driver.seconds_between(jobs.c.started_at, jobs.c.finished_at)

        def counted(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((condition, 1), else_=0))

        row = conn.execute(
            select(
                func.count(),
                func.sum(seconds),
                counted(jobs.c.status == JobState.COMPLETED.value),
                counted(jobs.c.status == JobState.FAILED.value),
                *(counted(seconds <= bound) for bound in bounds),
            ).where(recent)
        ).one()
        return tuple(row)


def _attempts_of(conn: Connection, job_ids: list[int]) -> dict[str, int]:
    """Attempts by outcome of these jobs, by primary key chunk by chunk: joined to the window's jobs instead,
    PostgreSQL's planner hashed the whole attempts table (110 ms at 200k attempts, growing with the table)."""
    counts: dict[str, int] = {}
    for start in range(0, len(job_ids), _ID_CHUNK):
        chunk = job_ids[start : start + _ID_CHUNK]
        rows = conn.execute(
            select(attempts.c.outcome, func.count())
            .where(attempts.c.job_id.in_(chunk), attempts.c.outcome.is_not(None))
            .group_by(attempts.c.outcome)
        )
        for outcome, n in rows:
            counts[str(outcome)] = counts.get(str(outcome), 0) + int(n)
    return counts
