"""SqlStore: the Store on SQLAlchemy Core, written once for SQLite, PostgreSQL and MariaDB/MySQL.

What all three share is here; what differs is in the database's driver (driver.py: sqlite.py, postgresql.py,
mysql.py). Every write that ends, fails, retries, releases, rescues or renews a running job names its lease
token in its own WHERE: fencing holds whatever was read or locked before it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, delete, func, insert, inspect, select, text, tuple_, update
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from errands.errors import InvalidTransition, JobNotFound, StoreError, StoreUnavailable
from errands.jobs import Attempt, AttemptOutcome, ErrorInfo, Job, JobState, Lease, NewJob, dumps
from errands.retry import crash_budget_spent
from errands.store.accounts import AccountRows
from errands.store.base import Claim, Finished, JobFilter, Listener, Outcome, Rescued, RetryBudget, WorkerInfo
from errands.store.bulk import BulkMixin
from errands.store.changed import ChangesMixin
from errands.store.claim import running_values
from errands.store.driver import OnError, driver_for
from errands.store.engine import normalize_url
from errands.store.insert import insert_row, wakes_workers
from errands.store.loglines import LogLinesMixin
from errands.store.notify import CANCEL_CHANNEL, CHANGES_CHANNEL, JOBS_CHANNEL, log_error
from errands.store.observe import ObserveRows
from errands.store.queues import QueuesMixin
from errands.store.reports import ReportsMixin
from errands.store.rows import attempt_from_row, job_from_row, job_values
from errands.store.schema import attempts, jobs, locks, log_lines, workers
from errands.store.storable import storable_outcome, unstorable

_FINISHED = (JobState.COMPLETED.value, JobState.FAILED.value, JobState.CANCELLED.value)
# a claim that took longer than this share of its lease renews the lease before its jobs are handed over
SLOW_CLAIM_SHARE = 0.25
# jobs deleted per transaction by a prune: on SQLite a write holds the only write lock, and heartbeats and
# lease renewals wait behind it (a few ms per batch here, well under the ~100 ms a writer may hold it)
PRUNE_BATCH = 500


class SqlStore(AccountRows, ReportsMixin, QueuesMixin, BulkMixin, LogLinesMixin, ChangesMixin, ObserveRows):
    # the mixins: accounts, reads, queues, bulk actions, log lines, job changes, what the probes and /metrics
    # read (store/accounts.py, reports.py, queues.py, bulk.py, loglines.py, changed.py, observe.py)
    def __init__(self, url: str) -> None:
        self.url = url
        normalized = normalize_url(url)
        self.driver = driver_for(normalized)
        # No pre-ping: it would cost a round trip per transaction. A connection the server closed while it was
        # idle in the pool is replaced at checkout (liveness.py); one dropped during a transaction fails that
        # transaction (StoreUnavailable), SQLAlchemy discards the pool's connections, and the next call
        # reconnects.
        self.engine = self.driver.create_engine(normalized)
        self.dialect = self.driver.name
        self.concurrent_writes = self.driver.concurrent_writes
        self._errors: tuple[type[BaseException], ...] = (SQLAlchemyError, *self.driver.raw_errors)

    def close(self) -> None:
        self.engine.dispose()

    # plumbing -------------------------------------------------------------------------------------------

    @contextmanager
    def _tx(self, write: bool = True, *, one_statement: bool = False) -> Iterator[Connection]:
        """One transaction; a driver error leaves as StoreError with the driver's exception as its cause, and
        as StoreUnavailable when the database can't be reached or the connection dropped (the next call
        connects afresh: liveness.py). one_statement: the transaction is a single statement, which PostgreSQL
        runs as its own transaction (autocommit), saving the BEGIN and COMMIT round trips."""
        options: dict[str, Any] = {
            "errands_write": write,
            **self.driver.transaction_options(one_statement=one_statement),
        }
        conn = self._connect()
        # whether a lost connection leaves the transaction's outcome unknown: its COMMIT (or, in autocommit,
        # its one write statement) may have been applied before the connection went
        ambiguous = write and one_statement
        try:
            with conn:
                conn.execution_options(**options)
                with conn.begin():
                    yield conn
                    ambiguous = write
        except self._errors as exc:
            raise _failure(exc, ambiguous) from exc

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except self._errors as exc:  # refused, starting up or shutting down, a timeout, the pool exhausted
            raise StoreUnavailable(f"the database at {self.safe_url} can't be reached ({describe(exc)})") from exc

    def _now(self, conn: Connection, now: datetime | None) -> datetime:
        """The time a write uses: the caller's (tests) or the database's clock (SQLite: this machine's)."""
        return now if now is not None else self.driver.now(conn)

    def _clock(self, conn: Connection, now: datetime | None) -> datetime | None:
        """The time for a claim or completions: None where the driver reads the clock in the statement."""
        return now if now is not None or self.driver.clock_in_statements else self.driver.now(conn)

    def now(self) -> datetime:
        with self._tx(write=False) as conn:
            return self._now(conn, None)

    # create and read ------------------------------------------------------------------------------------

    def job_insert(self, new: NewJob, *, reserve: Lease | None = None, now: datetime | None = None) -> int:
        if now is None:
            with self._tx(one_statement=True) as conn:
                return self.driver.insert_now(conn, new, reserve)
        with self._tx() as conn:
            return self._insert(conn, new, self._now(conn, now), reserve)

    def _insert(self, conn: Connection, new: NewJob, now: datetime, reserve: Lease | None) -> int:
        job_id = insert_row(conn, job_values(new, now, reserve))
        if wakes_workers(new, reserve):
            self.driver.notify(conn, JOBS_CHANNEL, new.queue)
        self.driver.notify(conn, CHANGES_CHANNEL, "")
        return job_id

    def jobs_insert_many(self, news: Sequence[NewJob], *, now: datetime | None = None) -> list[int]:
        if not news:
            return []
        with self._tx() as conn:
            moment = self._now(conn, now)
            ids = self.driver.insert_many(conn, [job_values(new, moment, None) for new in news])
            self.driver.notify(conn, JOBS_CHANNEL, "*")
            self.driver.notify(conn, CHANGES_CHANNEL, "")
            return ids

    def job_get(self, job_id: int) -> Job:
        with self._tx(write=False) as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        return job_from_row(row)

    def jobs_list(self, where: JobFilter) -> list[Job]:
        stmt = select(jobs).order_by(jobs.c.id.desc()).limit(where.limit)
        if where.status is not None:
            stmt = stmt.where(jobs.c.status == where.status.value)
        if where.queue is not None:
            stmt = stmt.where(jobs.c.queue == where.queue)
        if where.target is not None:
            stmt = stmt.where(jobs.c.target == where.target)
        if where.parent_id is not None:
            stmt = stmt.where(jobs.c.parent_id == where.parent_id)
        if where.before_id is not None:
            stmt = stmt.where(jobs.c.id < where.before_id)
        with self._tx(write=False) as conn:
            return [job_from_row(row) for row in conn.execute(stmt)]

    def job_attempts(self, job_id: int) -> list[Attempt]:
        stmt = select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)
        with self._tx(write=False) as conn:
            return [attempt_from_row(row) for row in conn.execute(stmt)]

    def job_follow_ups(self, job_id: int) -> list[int]:
        stmt = select(jobs.c.id).where(jobs.c.parent_id == job_id).order_by(jobs.c.id)
        with self._tx(write=False) as conn:
            return [int(row.id) for row in conn.execute(stmt)]

    def jobs_count_by_status(self) -> dict[str, int]:
        stmt = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self._tx(write=False) as conn:
            return {status: int(count) for status, count in conn.execute(stmt)}

    # the lease life cycle -------------------------------------------------------------------------------

    def jobs_claim(self, claim: Claim, limit: int, *, now: datetime | None = None) -> list[Job]:
        began = time.monotonic()
        with self._tx(one_statement=True) as conn:  # on PostgreSQL; elsewhere it is several
            rows = self.driver.claim(conn, claim, limit, self._clock(conn, now))
        claimed = sorted((job_from_row(row) for row in rows), key=lambda j: (-j.priority, j.scheduled_at, j.id))
        if claimed and now is None and time.monotonic() - began > claim.lease_s * SLOW_CLAIM_SHARE:
            claimed = self._renew_slow_claim(claim, claimed)
        return claimed

    def _renew_slow_claim(self, claim: Claim, claimed: list[Job]) -> list[Job]:
        """A claim that waited (a loaded server) spent part of its lease before its jobs reach the worker:
        renew the lease at once, so they arrive with a whole one. Jobs another worker's rescuer took back
        meanwhile (the claim outlasted its lease) are no longer this claim's, and are left out."""
        ours = self.leases_renew(claim.owner, {job.id: claim.token for job in claimed}, claim.lease_s)
        return [job for job in claimed if job.id in ours]

    def job_claim_by_id(self, job_id: int, claim: Claim, *, now: datetime | None = None) -> Job | None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            unreserved_or_mine = (
                jobs.c.lease_token.is_(None) | (jobs.c.lease_token == claim.token) | (jobs.c.lease_expires_at < moment)
            )
            stmt = (
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == JobState.PENDING.value, unreserved_or_mine)
                .values(running_values(claim, moment))
            )
            if conn.execute(stmt).rowcount != 1:
                return None
            job = job_from_row(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())
            self.driver.begin_attempts(conn, [job], claim.worker, moment)
            self.driver.notify(conn, CHANGES_CHANNEL, "")
        return job

    def jobs_finish(self, outcomes: Sequence[Outcome], *, now: datetime | None = None) -> list[Finished]:
        """Values are made storable first (storable.py). A batch the database still refuses (a data error, not
        a lost connection) is written outcome by outcome, and an outcome refused on its own is recorded as
        UnstorableOutcome: a job is never left running for want of a storable outcome, nor its batch with it."""
        storable = [storable_outcome(outcome) for outcome in outcomes]
        try:
            return self._finish(storable, now)
        except StoreError as exc:
            if not _refused(exc):
                raise
            if len(storable) == 1:
                return [self._finish_unstorable(storable[0], exc, now)]
        return [self._finish_alone(outcome, now) for outcome in storable]

    def _finish_alone(self, outcome: Outcome, now: datetime | None) -> Finished:
        try:
            return self._finish([outcome], now)[0]
        except StoreError as exc:
            if not _refused(exc):
                raise
            return self._finish_unstorable(outcome, exc, now)

    def _finish_unstorable(self, outcome: Outcome, exc: StoreError, now: datetime | None) -> Finished:
        return self._finish([unstorable(outcome, str(exc))], now)[0]

    def _finish(self, outcomes: Sequence[Outcome], now: datetime | None) -> list[Finished]:
        plain = [o for o in outcomes if o.next_state is JobState.COMPLETED and not o.follow_ups]
        with self._tx(one_statement=len(plain) == len(outcomes) and now is None) as conn:
            clock = self._clock(conn, now)
            recorded = self.driver.complete(conn, plain, clock) if plain else set()
            done = {o.job_id: Finished(o.job_id, recorded=o.job_id in recorded) for o in plain}
            others = [o for o in outcomes if o.job_id not in done]
            if others:  # (plain completions notify in the driver's statement)
                moment = clock or self._now(conn, now)
                done.update((o.job_id, self._finish_one(conn, o, moment)) for o in others)
                self.driver.notify(conn, CHANGES_CHANNEL, "")
        return [done[outcome.job_id] for outcome in outcomes]

    def _finish_one(self, conn: Connection, outcome: Outcome, now: datetime) -> Finished:
        guarded = update(jobs).where(
            jobs.c.id == outcome.job_id,
            jobs.c.status == JobState.RUNNING.value,
            jobs.c.lease_token == outcome.token,
        )
        if conn.execute(guarded.values(_finish_values(outcome, now))).rowcount != 1:
            return Finished(outcome.job_id, recorded=False)
        self._attempt_end(conn, outcome.job_id, outcome.attempt, outcome.outcome, outcome.error, now)
        follow_ups: list[int] = []
        if outcome.next_state is JobState.COMPLETED:
            for new in outcome.follow_ups:
                child = NewJob(**{**new.__dict__, "parent_id": outcome.job_id})
                follow_ups.append(self._insert(conn, child, now, outcome.reserve))
        return Finished(outcome.job_id, recorded=True, follow_up_ids=tuple(follow_ups))

    def _attempt_end(
        self,
        conn: Connection,
        job_id: int,
        number: int,
        outcome: AttemptOutcome,
        error: ErrorInfo | None,
        now: datetime,
    ) -> None:
        conn.execute(
            update(attempts)
            .where(attempts.c.job_id == job_id, attempts.c.number == number)
            .values(finished_at=now, outcome=outcome.value, **_error_values(error))
        )

    def leases_renew(
        self, owner: str, held: Mapping[int, str], lease_s: float, *, now: datetime | None = None
    ) -> set[int]:
        if not held:
            return set()
        with self._tx() as conn:
            moment = self._now(conn, now)
            ours = _renewable(owner, held)
            stmt = update(jobs).where(*ours).values(lease_expires_at=moment + timedelta(seconds=lease_s))
            return self.driver.updated_ids(conn, stmt, ours)

    def jobs_rescue_expired(self, crash_budget: int, *, now: datetime | None = None) -> list[Rescued]:
        with self._tx() as conn:
            moment = self._now(conn, now)
            stmt = select(jobs).where(jobs.c.status == JobState.RUNNING.value, jobs.c.lease_expires_at < moment)
            expired = [job_from_row(row) for row in conn.execute(self.driver.lock_rows(stmt))]
            return self._rescue(conn, expired, crash_budget, moment)

    def _rescue(self, conn: Connection, expired: list[Job], crash_budget: int, now: datetime) -> list[Rescued]:
        """Set-based, a statement per next state: a dead worker may have held a thousand jobs, and a statement
        per job kept them (and the rescuer's lock) for seconds. Each UPDATE names the (id, lease token) pairs it
        read: a lease that changed since (its owner finished, a renewal) is left alone, and only the attempts of
        the jobs rescued are closed."""
        states = {job.id: _state_after_loss(job, crash_budget) for job in expired}
        by_state: dict[JobState, list[Job]] = {}
        for job in expired:
            by_state.setdefault(states[job.id], []).append(job)
        rescued: set[int] = set()
        for state, these in by_state.items():
            rescued |= self._rescue_to(conn, state, these, now)
        ended = [(job.id, job.attempts) for job in expired if job.id in rescued]
        if ended:
            self.driver.notify(conn, CHANGES_CHANNEL, "")
            error = _error_values(ErrorInfo("WorkerLost", "worker lost: its lease expired while the job ran"))
            closed = tuple_(attempts.c.job_id, attempts.c.number).in_(ended)
            conn.execute(
                update(attempts).where(closed).values(finished_at=now, outcome=AttemptOutcome.LOST.value, **error)
            )
        return [
            Rescued(j.id, j.attempts, failed=j.lost_attempts + 1 >= crash_budget) for j in expired if j.id in rescued
        ]

    def _rescue_to(self, conn: Connection, state: JobState, expired: list[Job], now: datetime) -> set[int]:
        ids = [job.id for job in expired]
        leases = [(job.id, job.lease.token) for job in expired if job.lease is not None]
        fenced = (
            jobs.c.id.in_(ids),  # the primary key finds the rows; the pairs check them
            tuple_(jobs.c.id, jobs.c.lease_token).in_(leases),
            jobs.c.status == JobState.RUNNING.value,
            jobs.c.lease_expires_at < now,
        )
        lost = {"lost_attempts": jobs.c.lost_attempts + 1, **_error_values(ErrorInfo("WorkerLost", "worker lost"))}
        # back to pending: due now, and the lost attempt is not charged to the retry budget
        again = {
            "scheduled_at": now,
            "uncharged_attempts": jobs.c.uncharged_attempts + 1,
            "max_attempts": jobs.c.max_attempts + 1,
        }
        after = again if state is JobState.PENDING else {"finished_at": now}
        stmt = (
            update(jobs).where(*fenced).values(status=state.value, changed_at=now, **lost, **_lease_cleared(), **after)
        )
        # a database that can't return the rows reads back those now in the state, at this moment, unleased
        moment = jobs.c.scheduled_at if state is JobState.PENDING else jobs.c.finished_at
        now_there = (jobs.c.id.in_(ids), jobs.c.status == state.value, jobs.c.lease_token.is_(None), moment == now)
        return self.driver.updated_ids(conn, stmt, now_there)

    def jobs_cancel_requested(self, job_ids: Sequence[int]) -> list[int]:
        if not job_ids:
            return []
        stmt = select(jobs.c.id).where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.status == JobState.RUNNING.value,
            jobs.c.cancel_requested.is_(True),
        )
        with self._tx(write=False) as conn:
            return [int(row.id) for row in conn.execute(stmt)]

    # operator actions -----------------------------------------------------------------------------------

    def job_cancel(self, job_id: int, *, now: datetime | None = None) -> Job:
        with self._tx() as conn:
            moment = self._now(conn, now)
            pending = update(jobs).where(jobs.c.id == job_id, jobs.c.status == JobState.PENDING.value)
            done = conn.execute(
                pending.values(
                    status=JobState.CANCELLED.value, finished_at=moment, changed_at=moment, **_lease_cleared()
                )
            ).rowcount
            if not done:
                running = update(jobs).where(jobs.c.id == job_id, jobs.c.status == JobState.RUNNING.value)
                done = conn.execute(running.values(cancel_requested=True, changed_at=moment)).rowcount
                if done:
                    self.driver.notify(conn, CANCEL_CHANNEL, str(job_id))
            if done:
                self.driver.notify(conn, CHANGES_CHANNEL, "")
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        job = job_from_row(row)
        if not done:
            raise InvalidTransition(job_id, job.status.value, JobState.CANCELLED.value)
        return job

    def job_retry(self, job_id: int, budget: RetryBudget, *, now: datetime | None = None) -> Job:
        with self._tx() as conn:
            moment = self._now(conn, now)
            stmt = (
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status.in_((JobState.FAILED.value, JobState.CANCELLED.value)))
                .values(
                    status=JobState.PENDING.value,
                    uncharged_attempts=jobs.c.attempts,
                    max_attempts=jobs.c.attempts + budget.attempts,
                    lost_attempts=0,
                    scheduled_at=moment,
                    finished_at=None,
                    cancel_requested=False,
                    changed_at=moment,
                    **_lease_cleared(),
                )
            )
            done = conn.execute(stmt).rowcount
            if done:
                self.driver.notify(conn, JOBS_CHANNEL, "*")
                self.driver.notify(conn, CHANGES_CHANNEL, "")
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(job_id)
        job = job_from_row(row)
        if not done:
            raise InvalidTransition(job_id, job.status.value, JobState.PENDING.value)
        return job

    # workers and named locks ----------------------------------------------------------------------------

    def worker_register(self, info: WorkerInfo) -> None:
        values = {
            "id": info.id,
            "host": info.host,
            "pid": info.pid,
            "queues": json.dumps(list(info.queues)),
            "concurrency": info.concurrency,
            "started_at": info.started_at,
            "heartbeat_at": info.heartbeat_at,
        }
        with self._tx() as conn:
            conn.execute(insert(workers).values(values))

    def worker_heartbeat(self, worker_id: str, *, now: datetime | None = None) -> None:
        with self._tx() as conn:
            moment = self._now(conn, now)
            conn.execute(update(workers).where(workers.c.id == worker_id).values(heartbeat_at=moment))

    def worker_deregister(self, worker_id: str) -> None:
        with self._tx() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def workers_list(self, alive_within_s: float, *, now: datetime | None = None) -> list[WorkerInfo]:
        with self._tx(write=False) as conn:
            moment = self._now(conn, now)
            stmt = (
                select(workers)
                .where(workers.c.heartbeat_at >= moment - timedelta(seconds=alive_within_s))
                .order_by(workers.c.started_at)
            )
            rows = list(conn.execute(stmt))
        return [
            WorkerInfo(r.id, r.host, r.pid, tuple(json.loads(r.queues)), r.concurrency, r.started_at, r.heartbeat_at)
            for r in rows
        ]

    def lock_acquire(self, name: str, owner: str, ttl_s: float, *, now: datetime | None = None) -> bool:
        with self._tx() as conn:
            moment = self._now(conn, now)
            expires = moment + timedelta(seconds=ttl_s)
            stmt = (
                update(locks)
                .where(locks.c.name == name, (locks.c.owner == owner) | (locks.c.expires_at < moment))
                .values(owner=owner, expires_at=expires)
            )
            if conn.execute(stmt).rowcount == 1:
                return True
            if conn.execute(select(locks.c.name).where(locks.c.name == name)).first() is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(insert(locks).values(name=name, owner=owner, expires_at=expires))
            except IntegrityError:
                return False
            return True

    def jobs_prune(self, older_than_s: float, *, now: datetime | None = None) -> int:
        """In short transactions of PRUNE_BATCH jobs each, walking the primary key: one transaction for them
        all held SQLite's write lock for as long as it took, and heartbeats and renewals timed out behind it."""
        with self._tx(write=False) as conn:
            cutoff = self._now(conn, now) - timedelta(seconds=older_than_s)
        old = (jobs.c.status.in_(_FINISHED), jobs.c.finished_at < cutoff)
        pruned, after = 0, 0
        while True:
            with self._tx(write=False) as conn:  # the walk reads only: writers go on meanwhile
                batch = select(jobs.c.id).where(jobs.c.id > after, *old).order_by(jobs.c.id).limit(PRUNE_BATCH)
                ids = [int(row.id) for row in conn.execute(batch)]
            if ids:
                pruned += self._prune_batch(ids, old)
                after = ids[-1]
            if len(ids) < PRUNE_BATCH:
                return pruned

    def _prune_batch(self, ids: list[int], old: tuple[Any, ...]) -> int:
        with self._tx() as conn:  # those still old and finished (an operator's retry may have come between)
            gone = [int(row.id) for row in conn.execute(select(jobs.c.id).where(jobs.c.id.in_(ids), *old))]
            if gone:
                conn.execute(delete(attempts).where(attempts.c.job_id.in_(gone)))
                conn.execute(delete(log_lines).where(log_lines.c.job_id.in_(gone)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(gone)))
        return len(gone)

    def listen(self, callback: Callable[[str, str], None], on_error: OnError | None = None) -> Listener | None:
        """Start a listener that calls back on enqueues (and, on PostgreSQL, cancels); None where workers
        must poll (MariaDB, an in-memory SQLite). Its failures (a callback that raises, a lost connection) go
        to `on_error`, one line each (by default Python's logging); the listener goes on."""
        return self.driver.listen(self.engine.url, callback, on_error or log_error)

    def schema_version(self) -> str | None:
        """The applied Alembic revision, or None for an empty database. A database that can't be reached
        raises StoreError: it is not the same thing as one without a schema."""
        with self._tx(write=False) as conn:
            if not inspect(conn).has_table("errands_alembic_version"):
                return None
            version = conn.execute(text("SELECT version_num FROM errands_alembic_version")).scalar()
        return None if version is None else str(version)

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)


def describe(exc: BaseException) -> str:
    """One line for a driver error: its class and the first line of its message."""
    return f"database error: {exc.__class__.__name__}: {_first_line(exc)}"


def _failure(exc: BaseException, ambiguous: bool) -> StoreError:
    """The StoreError for a driver error in a transaction: StoreUnavailable when SQLAlchemy found the
    connection lost (it invalidated it, and the pool's older ones with it)."""
    if not getattr(exc, "connection_invalidated", False):
        return StoreError(describe(exc))
    unknown = ": the transaction may or may not have been applied" if ambiguous else ""
    return StoreUnavailable(f"the connection to the database was lost{unknown} ({describe(exc)})")


def _refused(exc: StoreError) -> bool:
    """Whether the database refused the values written (a data error), not the connection or the transaction."""
    cause = exc.__cause__
    return isinstance(cause, DataError | IntegrityError) and not cause.connection_invalidated


def _first_line(exc: BaseException) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__


def _error_values(error: ErrorInfo | None) -> dict[str, Any]:
    if error is None:
        return {"error_type": None, "error_message": None, "error_traceback": None}
    return {"error_type": error.type, "error_message": error.message, "error_traceback": error.traceback}


def _lease_cleared() -> dict[str, Any]:
    return {"lease_owner": None, "lease_token": None, "lease_expires_at": None}


def _finish_values(outcome: Outcome, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {"status": outcome.next_state.value, "changed_at": now, **_lease_cleared()}
    if outcome.next_state is JobState.COMPLETED:
        values.update(finished_at=now, result=dumps(outcome.result), **_error_values(None))
    elif outcome.next_state is JobState.PENDING:
        # an operator's cancel request outlives the attempt: the job ends cancelled instead of going back
        values["status"] = case(
            (jobs.c.cancel_requested.is_(True), JobState.CANCELLED.value), else_=JobState.PENDING.value
        )
        values["finished_at"] = case((jobs.c.cancel_requested.is_(True), now), else_=None)
        values["scheduled_at"] = outcome.retry_at or now + timedelta(seconds=outcome.retry_in_s or 0.0)
        if outcome.outcome in (AttemptOutcome.RELEASED, AttemptOutcome.LOST):
            # a shutdown or a crash doesn't spend the retry budget (the crash budget counts the latter)
            values.update(uncharged_attempts=jobs.c.uncharged_attempts + 1, max_attempts=jobs.c.max_attempts + 1)
        if outcome.reserve is not None:
            lease = outcome.reserve
            values.update(lease_owner=lease.owner, lease_token=lease.token, lease_expires_at=lease.expires_at)
    else:
        values["finished_at"] = now
    if outcome.outcome is AttemptOutcome.LOST:
        values["lost_attempts"] = jobs.c.lost_attempts + 1
    if outcome.error is not None:
        values.update(_error_values(outcome.error))
    return values


def _state_after_loss(job: Job, crash_budget: int) -> JobState:
    if crash_budget_spent(job, crash_budget):
        return JobState.FAILED
    if job.cancel_requested:  # the operator asked it to stop: it doesn't run again
        return JobState.CANCELLED
    return JobState.PENDING  # a lost attempt doesn't spend the retry budget; the crash budget counts it


def _renewable(owner: str, held: Mapping[int, str]) -> tuple[ColumnElement[bool], ...]:
    """The held leases still this owner's, by primary key: a scan by owner or token would walk (and on MariaDB
    lock) rows of other workers. A job's token is one of the held ones (tokens are random per claim), checked
    as a set."""
    return (
        jobs.c.id.in_(list(held)),
        jobs.c.lease_owner == owner,
        jobs.c.lease_token.in_(sorted(set(held.values()))),
        jobs.c.status.in_((JobState.RUNNING.value, JobState.PENDING.value)),
    )
