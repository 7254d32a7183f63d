"""Operators' reads (the Store protocol's "reports" section): job search with keyset pages, capped counts,
stats and failure groups. Nothing here counts a whole big table: counts stop at a cap, the completed count on
PostgreSQL is the planner's estimate, and every other count reads only unfinished rows (the partial indexes)
or the last hour's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState, dumps
from errands.reports import NO_ARGS_FILTER, Count, FailureGroup, JobPage, JobSearch, MinuteCounts, Stats
from errands.store.rows import job_from_row
from errands.store.schema import jobs

if TYPE_CHECKING:
    from errands.store.driver import Driver

UNFINISHED = (JobState.PENDING.value, JobState.RUNNING.value, JobState.FAILED.value, JobState.CANCELLED.value)
ENDED = (JobState.COMPLETED.value, JobState.FAILED.value)  # what the per-minute figures count
MINUTES = 60


class SqlParts:
    """What a mixin of SqlStore uses of it (declared for the type checker; SqlStore has them)."""

    driver: Driver

    if TYPE_CHECKING:

        def _tx(self, write: bool = True, *, one_statement: bool = False) -> AbstractContextManager[Connection]: ...

        def _now(self, conn: Connection, now: datetime | None) -> datetime: ...


class ReportsMixin(SqlParts):
    def jobs_search(self, search: JobSearch) -> JobPage:
        stmt = select(jobs).where(*self._matching(search)).order_by(jobs.c.id.desc()).limit(search.limit + 1)
        with self._tx(write=False) as conn:
            found = [job_from_row(row) for row in conn.execute(stmt)]
        page = found[: search.limit]
        return JobPage(page, page[-1].id if len(found) > search.limit else None)

    def job_ids_search(self, search: JobSearch) -> list[int]:
        stmt = select(jobs.c.id).where(*self._matching(search)).order_by(jobs.c.id.desc()).limit(search.limit)
        with self._tx(write=False) as conn:
            return [int(row.id) for row in conn.execute(stmt)]

    def jobs_count(self, search: JobSearch, cap: int) -> Count:
        # the rows are counted up to cap + 1: one more than the cap says "more than that" without counting on
        found = select(literal(1)).select_from(jobs).where(*self._matching(search)).limit(cap + 1).subquery()
        with self._tx(write=False) as conn:
            value = int(conn.execute(select(func.count()).select_from(found)).scalar_one())
        return Count(cap, exact=False) if value > cap else Count(value, exact=True)

    def _matching(self, search: JobSearch) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if search.statuses:
            where.append(jobs.c.status.in_([state.value for state in search.statuses]))
        if search.queue is not None:
            where.append(jobs.c.queue == search.queue)
        if search.target is not None:
            where.append(jobs.c.target == search.target)
        if search.text is not None:
            where.append(
                jobs.c.target.icontains(search.text, autoescape=True)
                | jobs.c.error_message.icontains(search.text, autoescape=True)
            )
        if search.args is not NO_ARGS_FILTER:
            where.append(self._args_match(search.args))
        if search.created_after is not None:
            where.append(jobs.c.created_at >= search.created_after)
        if search.created_before is not None:
            where.append(jobs.c.created_at < search.created_before)
        if search.parent_id is not None:
            where.append(jobs.c.parent_id == search.parent_id)
        if search.before_id is not None:
            where.append(jobs.c.id < search.before_id)
        return where

    def _args_match(self, wanted: Any) -> ColumnElement[bool]:
        """An object is looked for in the keyword arguments; any other value among the positional ones (a list:
        each of its values)."""
        column, empty = (jobs.c.kwargs, "{}") if isinstance(wanted, dict) else (jobs.c.args, "[]")
        candidate = wanted if isinstance(wanted, dict | list) else [wanted]
        contains = self.driver.json_contains(column, dumps(candidate))
        # an empty document contains no non-empty candidate: said, this lets PostgreSQL use its partial GIN index
        return (column != empty) & contains if candidate else contains

    # stats ----------------------------------------------------------------------------------------------

    def jobs_stats(self, *, now: datetime | None = None) -> Stats:
        with self._tx(write=False) as conn:
            moment = self._now(conn, now)
            by_queue = self._unfinished_by_queue(conn)
            by_status = {state: Count(0, exact=True) for state in JobState}
            for counts in by_queue.values():
                for state, count in counts.items():
                    by_status[JobState(state)] = Count(by_status[JobState(state)].value + count.value, True)
            unfinished = sum(count.value for count in by_status.values())
            by_status[JobState.COMPLETED] = self._completed(conn, unfinished)
            return Stats(
                by_status={state.value: count for state, count in by_status.items()},
                by_queue=by_queue,
                per_minute=self._per_minute(conn, moment),
                oldest_due=self._oldest_due(conn, moment),
            )

    def _unfinished_by_queue(self, conn: Connection) -> dict[str, dict[str, Count]]:
        stmt = (
            select(jobs.c.queue, jobs.c.status, func.count())
            .where(jobs.c.status.in_(UNFINISHED))
            .group_by(jobs.c.queue, jobs.c.status)
        )
        out: dict[str, dict[str, Count]] = {}
        for queue, status, count in conn.execute(stmt):
            out.setdefault(queue, {})[status] = Count(int(count), exact=True)
        return out

    def _completed(self, conn: Connection, unfinished: int) -> Count:
        """The planner's estimate of the table's rows less the exact unfinished ones, where the database keeps
        one (PostgreSQL): counting a million completed rows is what the stats must not do."""
        estimate = self.driver.estimated_rows(conn, jobs.name)
        if estimate is not None:
            return Count(max(estimate - unfinished, 0), exact=False)
        stmt = select(func.count()).select_from(jobs).where(jobs.c.status == JobState.COMPLETED.value)
        return Count(int(conn.execute(stmt).scalar_one()), exact=True)

    def _per_minute(self, conn: Connection, now: datetime) -> list[MinuteCounts]:
        """Completions and failures in each of the last 60 minutes (the current one last), one scan of the hour's
        finished rows: a CASE names each row's minute, on every database alike."""
        end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
        starts = [end - timedelta(minutes=MINUTES - i) for i in range(MINUTES)]
        minute = case(*((jobs.c.finished_at < start + timedelta(minutes=1), i) for i, start in enumerate(starts)))
        stmt = (
            select(minute.label("minute"), jobs.c.status, func.count())
            .where(jobs.c.finished_at >= starts[0], jobs.c.finished_at < end, jobs.c.status.in_(ENDED))
            .group_by(minute, jobs.c.status)
        )
        counts = {(int(i), status): int(n) for i, status, n in conn.execute(stmt) if i is not None}
        return [
            MinuteCounts(start, counts.get((i, ENDED[0]), 0), counts.get((i, ENDED[1]), 0))
            for i, start in enumerate(starts)
        ]

    def _oldest_due(self, conn: Connection, now: datetime) -> dict[str, datetime]:
        stmt = (
            select(jobs.c.queue, func.min(jobs.c.scheduled_at))
            .where(jobs.c.status == JobState.PENDING.value, jobs.c.scheduled_at <= now)
            .group_by(jobs.c.queue)
        )
        return {queue: oldest for queue, oldest in conn.execute(stmt)}

    # failure groups -------------------------------------------------------------------------------------

    def failure_groups(self, limit: int) -> list[FailureGroup]:
        error_type = func.coalesce(jobs.c.error_type, "")
        ended = func.coalesce(jobs.c.finished_at, jobs.c.created_at)
        stmt = (
            select(
                error_type.label("error_type"),
                jobs.c.target,
                jobs.c.method,
                func.count().label("n"),
                func.min(ended).label("first_at"),
                func.max(ended).label("last_at"),
                func.max(jobs.c.id).label("sample"),
            )
            .where(jobs.c.status == JobState.FAILED.value)
            .group_by(error_type, jobs.c.target, jobs.c.method)
            .order_by(func.count().desc(), func.max(jobs.c.id).desc())
            .limit(limit)
        )
        with self._tx(write=False) as conn:
            groups = list(conn.execute(stmt))
            samples = [int(group.sample) for group in groups]
            rows = conn.execute(select(jobs.c.id, jobs.c.error_message).where(jobs.c.id.in_(samples)))
            messages = {int(row.id): row.error_message for row in rows}
        return [
            FailureGroup(
                g.error_type,
                g.target,
                g.method,
                int(g.n),
                g.first_at,
                g.last_at,
                int(g.sample),
                messages.get(int(g.sample)),
            )
            for g in groups
        ]
