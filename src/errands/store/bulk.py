"""Operators' actions on many jobs (the Store protocol's "reports" section): cancel and retry in batches, and
the bulk runs' progress rows that errands.bulk writes as it walks a filter.

A batch follows job_cancel's and job_retry's rules (the TRANSITIONS table) in one transaction: one guarded
UPDATE per source state, by primary key, so a job whose state changed since it was picked is skipped, never
forced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, case, insert, select, update

from errands.errors import BulkRunNotFound
from errands.jobs import JobState, dumps
from errands.reports import BulkRun
from errands.store.base import BatchDone
from errands.store.notify import CANCEL_CHANNEL, JOBS_CHANNEL
from errands.store.reports import SqlParts
from errands.store.schema import bulk_runs, jobs

RUNNING, DONE, FAILED = "running", "done", "failed"
_RETRYABLE = (JobState.FAILED.value, JobState.CANCELLED.value)
_NO_LEASE = {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


class BulkMixin(SqlParts):
    def jobs_cancel_batch(self, job_ids: Sequence[int], *, now: datetime | None = None) -> BatchDone:
        ids = sorted(set(job_ids))
        if not ids:
            return BatchDone(0, 0)
        with self._tx() as conn:
            moment = self._now(conn, now)
            pending = update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == JobState.PENDING.value)
            cancelled = conn.execute(
                pending.values(status=JobState.CANCELLED.value, finished_at=moment, **_NO_LEASE)
            ).rowcount
            running = update(jobs).where(jobs.c.id.in_(ids), jobs.c.status == JobState.RUNNING.value)
            requested = conn.execute(running.values(cancel_requested=True)).rowcount
            if requested:
                self.driver.notify(conn, CANCEL_CHANNEL, "*")  # their owners stop them
        return BatchDone(cancelled + requested, len(ids) - cancelled - requested)

    def jobs_retry_batch(
        self, job_ids: Sequence[int], default_budget: int, *, now: datetime | None = None
    ) -> BatchDone:
        ids = sorted(set(job_ids))
        if not ids:
            return BatchDone(0, 0)
        # job_retry's budget: the job's own max_attempts if it pinned one, else the default
        budget = case(
            (jobs.c.attempts_pinned.is_(True), jobs.c.max_attempts - jobs.c.uncharged_attempts), else_=default_budget
        )
        with self._tx() as conn:
            moment = self._now(conn, now)
            stmt = (
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.status.in_(_RETRYABLE))
                # in this order: MariaDB's SET reads the columns it already set (max_attempts needs the old
                # uncharged_attempts)
                .ordered_values(
                    (jobs.c.max_attempts, jobs.c.attempts + budget),
                    (jobs.c.uncharged_attempts, jobs.c.attempts),
                    (jobs.c.status, JobState.PENDING.value),
                    (jobs.c.lost_attempts, 0),
                    (jobs.c.scheduled_at, moment),
                    (jobs.c.finished_at, None),
                    (jobs.c.cancel_requested, False),
                    *((jobs.c[name], value) for name, value in _NO_LEASE.items()),
                )
            )
            retried = conn.execute(stmt).rowcount
            if retried:
                self.driver.notify(conn, JOBS_CHANNEL, "*")
        return BatchDone(retried, len(ids) - retried)

    # bulk runs ------------------------------------------------------------------------------------------

    def bulk_run_insert(
        self, action: str, search: Mapping[str, Any], created_by: str, *, now: datetime | None = None
    ) -> BulkRun:
        with self._tx() as conn:
            moment = self._now(conn, now)
            values = {
                "action": action,
                "search": dumps(dict(search)),
                "status": RUNNING,
                "total": 0,
                "done": 0,
                "skipped": 0,
                "created_by": created_by,
                "created_at": moment,
                "heartbeat_at": moment,
            }
            key = conn.execute(insert(bulk_runs), values).inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            row = conn.execute(select(bulk_runs).where(bulk_runs.c.id == run_id)).one()
        return _run(row)

    def bulk_run_progress(
        self,
        run_id: int,
        *,
        total: int | None = None,
        done: int = 0,
        skipped: int = 0,
        now: datetime | None = None,
    ) -> None:
        with self._tx() as conn:
            values: dict[str, Any] = {
                "done": bulk_runs.c.done + done,
                "skipped": bulk_runs.c.skipped + skipped,
                "heartbeat_at": self._now(conn, now),
            }
            if total is not None:
                values["total"] = total
            conn.execute(update(bulk_runs).where(bulk_runs.c.id == run_id).values(values))

    def bulk_run_finish(self, run_id: int, error: str | None = None, *, now: datetime | None = None) -> None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            values = {
                "status": FAILED if error else DONE,
                "error": error,
                "finished_at": moment,
                "heartbeat_at": moment,
            }
            conn.execute(
                update(bulk_runs).where(bulk_runs.c.id == run_id, bulk_runs.c.status == RUNNING).values(values)
            )

    def bulk_run_get(self, run_id: int, *, stale_after_s: float, now: datetime | None = None) -> BulkRun:
        with self._tx() as conn:
            moment = self._now(conn, now)
            abandoned = update(bulk_runs).where(
                bulk_runs.c.id == run_id,
                bulk_runs.c.status == RUNNING,
                bulk_runs.c.heartbeat_at < moment - timedelta(seconds=stale_after_s),
            )
            conn.execute(
                abandoned.values(status=FAILED, finished_at=moment, error="abandoned: the process running it stopped")
            )
            row = conn.execute(select(bulk_runs).where(bulk_runs.c.id == run_id)).first()
        if row is None:
            raise BulkRunNotFound(run_id)
        return _run(row)


def _run(row: Row[Any]) -> BulkRun:
    m = row._mapping
    return BulkRun(
        id=int(m["id"]),
        action=m["action"],
        search=json.loads(m["search"]),
        status=m["status"],
        total=int(m["total"]),
        done=int(m["done"]),
        skipped=int(m["skipped"]),
        created_by=m["created_by"],
        created_at=m["created_at"],
        finished_at=m["finished_at"],
        error=m["error"],
    )
