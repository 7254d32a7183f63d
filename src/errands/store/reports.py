"""Operators' reads (the Store protocol's "reports" section): job search with keyset pages, capped counts,
stats and failure groups. Nothing here counts a whole big table: counts stop at a cap, the completed count on
PostgreSQL is the planner's estimate, and every other count reads only unfinished rows (the partial indexes)
or the last hour's.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    Connection,
    Select,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from errands.jobs import JobState, dumps
from errands.reports import NO_ARGS_FILTER, Count, FailureGroup, JobPage, JobSearch, MinuteCounts, Stats
from errands.store.rows import job_from_row
from errands.store.schema import FINISHED_ROWS, jobs

if TYPE_CHECKING:
    from errands.store.driver import Driver

FINISHED = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value)
# schema.FINISHED_ROWS as the statement states it: a literal, so SQLite and a generic plan match it to the indexes
_FINISHED_ROWS: ColumnElement[bool] = literal_column(FINISHED_ROWS, Boolean)
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
        with self._tx(write=False) as conn:
            found = [job_from_row(row) for row in conn.execute(self._search(search, jobs.c, search.limit + 1))]
        page = found[: search.limit]
        return JobPage(page, page[-1].id if len(found) > search.limit else None)

    def job_ids_search(self, search: JobSearch) -> list[int]:
        with self._tx(write=False) as conn:
            return [int(row.id) for row in conn.execute(self._search(search, [jobs.c.id], search.limit))]

    def jobs_count(self, search: JobSearch, cap: int) -> Count:
        # each part's rows are counted up to cap + 1: more than the cap says "more than that" without counting on
        value = 0
        with self._tx(write=False) as conn:
            for where in self._parts(search):
                found = select(literal(1)).select_from(jobs).where(*where).limit(cap + 1).subquery()
                value += int(conn.execute(select(func.count()).select_from(found)).scalar_one())
        return Count(cap, exact=False) if value > cap else Count(value, exact=True)

    def _search(self, search: JobSearch, columns: Any, limit: int) -> Select[Any]:
        """The newest `limit` matches: each part newest first through its own indexes, then merged."""
        pages = [
            select(*columns).where(*where).order_by(jobs.c.id.desc()).limit(limit) for where in self._parts(search)
        ]
        if len(pages) == 1:
            return pages[0]
        merged = union_all(*(select(page.subquery()) for page in pages)).subquery()
        return select(merged).order_by(merged.c.id.desc()).limit(limit)

    def _parts(self, search: JobSearch) -> list[list[ColumnElement[bool]]]:
        """The search's conditions, once for finished rows and once for unfinished ones (the states it asks for).

        The target, queue and args indexes hold finished rows only (schema.py: one entry per job, not three),
        and a database uses a partial index only for a query that states its predicate; the unfinished rows
        are few and the status index finds them."""
        wanted = {state.value for state in search.statuses} or {state.value for state in JobState}
        filters = self._filters(search)
        parts: list[list[ColumnElement[bool]]] = []
        finished = sorted(wanted & set(FINISHED))
        if finished:
            narrowed = [] if len(finished) == len(FINISHED) else [jobs.c.status.in_([_inline(f) for f in finished])]
            parts.append([_FINISHED_ROWS, *narrowed, *filters])
        # one part per unfinished state: `status = 'pending' ORDER BY id DESC` reads the status index in order,
        # where `status IN ('pending', 'running')` would sort every such row (a backlog's worth) for one page
        parts.extend([jobs.c.status == _inline(live), *filters] for live in sorted(wanted - set(FINISHED)))
        return parts

    def _filters(self, search: JobSearch) -> list[ColumnElement[bool]]:
        """Every condition of `search` but its states. Values that decide the plan are written into the
        statement (_inline)."""
        where: list[ColumnElement[bool]] = []
        if search.queue is not None:
            where.append(jobs.c.queue == _inline(search.queue))
        if search.target is not None:
            where.append(jobs.c.target == _inline(search.target))
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
            where.append(jobs.c.parent_id == _inline(search.parent_id))
        if search.before_id is not None:
            where.append(jobs.c.id < _inline(search.before_id))
        return where

    def _args_match(self, wanted: Any) -> ColumnElement[bool]:
        """An object is looked for in the keyword arguments; any other value among the positional ones (a list:
        each of its values)."""
        column, empty = (jobs.c.kwargs, "{}") if isinstance(wanted, dict) else (jobs.c.args, "[]")
        candidate = wanted if isinstance(wanted, dict | list) else [wanted]
        contains = self.driver.json_contains(column, dumps(candidate))
        # an empty document contains no non-empty candidate: said, this lets PostgreSQL use its partial GIN index
        return (column != _inline(empty)) & contains if candidate else contains

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
        # plain columns only: ix_errands_jobs_failures (failed rows) then answers it alone, without the table
        stmt = (
            select(
                jobs.c.error_type,
                jobs.c.target,
                jobs.c.method,
                func.count().label("n"),
                func.min(jobs.c.finished_at).label("first_at"),
                func.max(jobs.c.finished_at).label("last_at"),
                func.max(jobs.c.id).label("sample"),
            )
            .where(jobs.c.status == _inline(JobState.FAILED.value))
            .group_by(jobs.c.error_type, jobs.c.target, jobs.c.method)
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
                g.error_type or "",
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


def _inline(value: Any) -> BindParameter[Any]:
    """A value written into the statement, not bound: a prepared statement's generic plan (psycopg prepares a
    statement after 5 runs) plans `queue = $1` for an average queue and walked a million rows for a rare one
    (1.2 s); written in, each value gets its own plan. SQLAlchemy quotes it."""
    return bindparam(None, value, literal_execute=True)
