"""Queues as operators see them (the Store protocol's "reports" section): their depth, due jobs and pause.

A queue exists while it has jobs or a row in errands_queues (written when an operator pauses or resumes it).
Its name list comes from a loose index scan over ix_errands_jobs_queue (one index probe per queue, whatever the
table's size), its counts from the unfinished rows only.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, case, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from errands.jobs import JobState
from errands.reports import QueueInfo
from errands.store.notify import JOBS_CHANNEL
from errands.store.reports import SqlParts
from errands.store.schema import FINISHED_ROWS, jobs, queues

# The distinct queue names of finished jobs, one probe of the (queue, id) index of finished rows each: the next
# name after the last one found (SELECT DISTINCT would read every entry). The unfinished jobs' queues come with
# their counts. Recursive CTEs: PostgreSQL, SQLite, MariaDB 10.2+.
_QUEUE_NAMES = text(
    f"""
    WITH RECURSIVE names(name) AS (
        SELECT MIN(queue) FROM errands_jobs WHERE {FINISHED_ROWS}
        UNION ALL
        SELECT (SELECT MIN(j.queue) FROM errands_jobs j WHERE j.queue > names.name AND j.{FINISHED_ROWS})
        FROM names WHERE names.name IS NOT NULL
    )
    SELECT name FROM names WHERE name IS NOT NULL
    """
)
_LIVE = (JobState.PENDING.value, JobState.RUNNING.value)


class QueuesMixin(SqlParts):
    def queues_info(self, *, now: datetime | None = None) -> list[QueueInfo]:
        with self._tx(write=False) as conn:
            moment = self._now(conn, now)
            names = {str(row.name) for row in conn.execute(_QUEUE_NAMES)}
            return self._queues(conn, moment, names)

    def queue_set_paused(self, queue: str, paused: bool, changed_by: str, *, now: datetime | None = None) -> QueueInfo:
        with self._tx() as conn:
            moment = self._now(conn, now)
            values = {"paused": paused, "changed_at": moment, "changed_by": changed_by}
            if not conn.execute(update(queues).where(queues.c.name == queue).values(values)).rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(queues).values(name=queue, **values))
                except IntegrityError:  # another operator's first change of this queue came first: ours is later
                    conn.execute(update(queues).where(queues.c.name == queue).values(values))
            if not paused:
                self.driver.notify(conn, JOBS_CHANNEL, queue)  # idle workers claim again
            return self._queues(conn, moment, {queue}, only={queue})[0]

    def queues_paused(self) -> frozenset[str]:
        with self._tx(write=False) as conn:
            return frozenset(str(row.name) for row in conn.execute(select(queues.c.name).where(queues.c.paused)))

    def _queues(
        self, conn: Connection, now: datetime, names: set[str], only: set[str] | None = None
    ) -> list[QueueInfo]:
        """QueueInfo of `names` and of every queue with a row in errands_queues (of `only`, when given)."""
        flags = select(queues.c.name, queues.c.paused)
        counts = select(
            jobs.c.queue,
            jobs.c.status,
            func.count().label("n"),
            func.sum(case((jobs.c.scheduled_at <= now, 1), else_=0)).label("due"),  # (MariaDB has no FILTER)
            func.min(case((jobs.c.scheduled_at <= now, jobs.c.scheduled_at))).label("oldest_due"),
        ).where(jobs.c.status.in_(_LIVE))
        if only is not None:
            flags = flags.where(queues.c.name.in_(sorted(only)))
            counts = counts.where(jobs.c.queue.in_(sorted(only)))
        paused = {str(row.name): bool(row.paused) for row in conn.execute(flags)}
        live: dict[str, dict[str, tuple[int, int, datetime | None]]] = {}
        for row in conn.execute(counts.group_by(jobs.c.queue, jobs.c.status)):
            live.setdefault(row.queue, {})[row.status] = (int(row.n), int(row.due), row.oldest_due)
        everything = names | set(paused) | set(live)
        return [_info(name, paused.get(name, False), live.get(name, {}), now) for name in sorted(everything)]


def _info(name: str, paused: bool, live: dict[str, tuple[int, int, datetime | None]], now: datetime) -> QueueInfo:
    pending, due, oldest = live.get(JobState.PENDING.value, (0, 0, None))
    running = live.get(JobState.RUNNING.value, (0, 0, None))[0]
    age = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
    return QueueInfo(name, paused, pending, due, running, oldest, age)
