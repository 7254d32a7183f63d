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
        attempt's duration over `bounds` (ascending seconds), and their attempts by outcome. Reads only the
        window's rows where finished_at is indexed; locks nothing."""
        with self._tx(write=False) as conn:
            since = self._now(conn, now) - timedelta(seconds=window_s)
            recent = (jobs.c.finished_at >= since) & jobs.c.status.in_(_RAN) & jobs.c.started_at.is_not(None)
            durations = self._durations(conn, recent, bounds)
            by_attempt = conn.execute(
                select(attempts.c.outcome, func.count())
                .select_from(jobs.join(attempts, attempts.c.job_id == jobs.c.id))
                .where(recent, attempts.c.outcome.is_not(None))
                .group_by(attempts.c.outcome)
            ).all()
        count, sum_s, completed, failed, *buckets = durations
        return RecentFinishes(
            window_s=window_s,
            bounds=tuple(bounds),
            buckets=tuple(int(n or 0) for n in buckets),
            count=int(count or 0),
            sum_s=float(sum_s or 0.0),
            by_status={JobState.COMPLETED.value: int(completed or 0), JobState.FAILED.value: int(failed or 0)},
            attempts={str(outcome): int(n) for outcome, n in by_attempt},
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
