"""The application's one door: what user code, the CLI and the web use. `connect()` gives a Client: enqueue,
enqueue_many, get, list, cancel, retry, prune, workers, run a job now or in the background; `migrate_database()`
and `run_worker()` need no Client. The faces import this module, errands.jobs, errands.errors and
errands.settings, never the store or the worker (`make lint` checks it).

Every input is checked here, before anything is stored: the allow-list (without importing the target), JSON
arguments, and the numbers' ranges. A bad input raises InvalidInput (or TargetNotAllowed) with one clear line.
The machinery that runs jobs (errands.runtime, the worker) is imported by the methods that need it: a process
that only enqueues never loads it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from errands import checks
from errands.changes import ChangeFeed
from errands.checks import queue_name as queue_name  # the CLI checks --queue with it
from errands.errors import BulkRunNotFound, InvalidInput, TargetNotAllowed
from errands.jobs import Attempt, FollowUp, Job, JobState, Lease, NewJob, WorkerInfo
from errands.logs import LOG_FILES, JobLog, open_log
from errands.logship import LogShipper
from errands.reports import (
    BulkRun,
    Count,
    FailureGroup,
    JobChange,
    JobPage,
    JobSearch,
    LogLine,
    QueueInfo,
    RecentFinishes,
    Stats,
)
from errands.search import check_search
from errands.search import search_from_json as search_from_json  # the API's query or body -> JobSearch
from errands.search import search_to_json as search_to_json
from errands.settings import Settings, load_settings
from errands.store import open_store
from errands.store.base import JobFilter, Listener, RetryBudget, Store
from errands.targets import check_allowed

ThenStep = FollowUp | Sequence[Any]

# /metrics: the window of recently finished jobs, and the duration histogram's buckets (seconds)
RECENT_WINDOW_S = 60.0
DURATION_BOUNDS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass(frozen=True)
class JobRequest:
    """enqueue()'s arguments, as one value (enqueue_many takes a list of these)."""

    target: str
    method: str = ""
    args: Sequence[Any] = ()
    kwargs: Mapping[str, Any] | None = None
    priority: int | None = None
    queue: str = "default"
    delay: float = 0
    at: datetime | None = None
    timeout: float | None = None
    max_attempts: int | None = None
    then: Iterable[ThenStep] = ()
    sensitive: bool = False


def connect(settings: Settings | None = None) -> Client:
    """A Client on the database of `settings` (default: load_settings()); the SQLite default is migrated on
    first use. Everything it starts (a detached process, a run now) uses these settings."""
    settings = settings or load_settings()
    return Client(settings, open_store(settings.database_url))


def migrate_database(settings: Settings) -> str:
    """Create or upgrade the schema (`errands migrate`); returns the database's URL, its password hidden."""
    from errands.store.migrate import upgrade  # Alembic only for this
    from errands.store.sql import SqlStore

    store = SqlStore(settings.database_url)  # not open_store: that refuses a database not migrated yet
    try:
        upgrade(store)
    finally:
        store.close()
    return store.safe_url


def run_worker(
    settings: Settings,
    *,
    queues: Sequence[str] = (),
    concurrency: int = 2,
    burst: bool = False,
    prefetch: int | None = None,
    grace: float | None = None,
) -> int:
    """Run a worker in this process until SIGTERM or SIGINT (or, with `burst`, until nothing is due); returns
    its exit code. `queues` empty: every queue."""
    from errands.runtime import run_worker as run
    from errands.worker.loop import WorkerOptions

    return run(settings, WorkerOptions(tuple(queues), concurrency, burst, prefetch, grace))


class Client:
    def __init__(self, settings: Settings, store: Store, log: JobLog | None = None) -> None:
        self.settings = settings
        self._store = store
        # the log's lines go to the files and, in batches, to the database (what the API's logs show)
        self.log = log or open_log(settings, sink=LogShipper(store))
        self._allowed: set[tuple[str, str]] = set()  # (target, method) pairs checked and allowed already
        self._bulk_threads: list[threading.Thread] = []

    def close(self) -> None:
        for thread in self._bulk_threads:  # a bulk run's batches are short: let the current one end
            thread.join(timeout=BULK_JOIN_S)
        self.log.close()
        self._store.close()

    # create ---------------------------------------------------------------------------------------------

    def new_job(self, request: JobRequest) -> NewJob:
        """Validate a request into the value the store inserts. Refusals are written to the error log."""
        if not isinstance(request, JobRequest):
            raise InvalidInput(f"a job request must be a JobRequest, got {type(request).__name__}")
        target, method = checks.target_and_method(request.target, request.method)
        try:
            self._check_allowed(target, method)
            then = checks.then_size(tuple(self._then_step(step) for step in checks.arg_list("then", request.then)))
        except TargetNotAllowed as refusal:
            self.log.refused(refusal.target, refusal.method, refusal.reason)
            raise
        return NewJob(
            target=target,
            method=method,
            args=tuple(checks.json_value("args", checks.arg_list("args", request.args))),
            kwargs=dict(checks.json_value("kwargs", checks.kwarg_dict("kwargs", request.kwargs))),
            queue=checks.queue_name(request.queue),
            priority=self.settings.default_priority
            if request.priority is None
            else checks.int32("priority", request.priority),
            max_attempts=checks.attempts(request.max_attempts) or self.settings.max_retries,
            attempts_pinned=request.max_attempts is not None,
            delay_s=checks.delay(request.delay),
            scheduled_at=checks.naive_utc(request.at) if request.at is not None else None,
            timeout_s=checks.positive("timeout", request.timeout),
            sensitive=checks.flag("sensitive", request.sensitive),
            then=then,
        )

    def _check_allowed(self, target: str, method: str) -> None:
        """check_allowed, remembered for the pairs it allowed (the allow-list is fixed with the settings):
        enqueue_many of thousands of jobs of a few kinds checks each kind once."""
        if (target, method) not in self._allowed:
            check_allowed(target, method, self.settings.allowed_jobs)
            self._allowed.add((target, method))

    def _then_step(self, step: ThenStep) -> FollowUp:
        if isinstance(step, FollowUp):
            target, method, args, kwargs = step.target, step.method, step.args, step.kwargs
        elif isinstance(step, list | tuple) and len(step) in (2, 3):
            target, method, args, kwargs = step[0], step[1], step[2] if len(step) == 3 else (), {}
        else:
            raise InvalidInput("then: each step is a FollowUp, (target, method) or (target, method, args)")
        target, method = checks.target_and_method(target, method, "then ")
        self._check_allowed(target, method)
        args = checks.json_value("then args", checks.arg_list("then args", args))
        kwargs = checks.json_value("then kwargs", checks.kwarg_dict("then kwargs", kwargs))
        return FollowUp(target, method, tuple(args), kwargs)

    def enqueue(self, request: JobRequest, *, reserve: Lease | None = None) -> int:
        new = self.new_job(request)
        job_id = self._store.job_insert(new, reserve=reserve)
        self.log.enqueued([job_id], [new])
        return job_id

    def enqueue_many(self, requests: Iterable[JobRequest]) -> list[int]:
        """All or nothing: every request is validated before the batch goes in, in one transaction."""
        news = [self.new_job(request) for request in requests]
        ids = self._store.jobs_insert_many(news)
        self.log.enqueued(ids, news)
        return ids

    # run ------------------------------------------------------------------------------------------------

    def run_now(self, request: JobRequest) -> list[Job]:
        """Record the job and run it in this process (a child process per attempt), with its retries and
        follow-ups; returns them as they ended, in order (`errands run-job`)."""
        from errands import runtime

        claim = runtime.new_claim(runtime.RUN_JOB, self.settings)
        job_id = self.enqueue(request, reserve=runtime.reservation(self._store, claim))
        return runtime.run_claimed(self._store, self.settings, self.log, claim, job_id)

    def run_in_background(self, request: JobRequest) -> int:
        """Record the job and start a detached OS process that runs it (with this Client's settings) and
        outlives this one; returns its id at once. With dispatch = "queue", only enqueue it for the workers."""
        if self.settings.dispatch == "queue":
            return self.enqueue(request)
        from errands import runtime

        claim = runtime.new_claim(runtime.SPAWN, self.settings)
        job_id = self.enqueue(request, reserve=runtime.reservation(self._store, claim))
        runtime.start_in_background(self.settings, self.log, job_id, claim)
        return job_id

    def run_background_job(
        self,
        target: str,
        method: str,
        params: Sequence[Any] = (),
        priority: int | None = None,
        *,
        delay: float = 0,
        queue: str = "default",
    ) -> int:
        """The Laravel runner's call: run_in_background() with positional target, method, params and priority."""
        request = JobRequest(target, method, args=params, priority=priority, delay=delay, queue=queue)
        return self.run_in_background(request)

    # read and act ---------------------------------------------------------------------------------------

    def get(self, job_id: int) -> Job:
        return self._store.job_get(checks.job_id(job_id))

    def jobs(self, status: JobState | None = None, queue: str | None = None, limit: int = 100) -> list[Job]:
        return self._store.jobs_list(
            JobFilter(status=status, queue=None if queue is None else checks.queue_name(queue), limit=limit)
        )

    def attempts(self, job_id: int) -> list[Attempt]:
        return self._store.job_attempts(checks.job_id(job_id))

    def follow_ups(self, job_id: int) -> list[int]:
        return self._store.job_follow_ups(checks.job_id(job_id))

    def cancel(self, job_id: int) -> Job:
        job = self._store.job_cancel(checks.job_id(job_id))
        if job.status is JobState.CANCELLED:
            self.log.cancelled(job)
        else:
            self.log.info(job, f"Job {job.id}: cancel requested while running")
        return job

    def retry(self, job_id: int) -> Job:
        """A fresh budget: the job's own max_attempts if it was given one, else max_retries."""
        before = self._store.job_get(checks.job_id(job_id))
        budget = before.budget if before.attempts_pinned else self.settings.max_retries
        job = self._store.job_retry(job_id, RetryBudget(budget))
        self.log.info(job, f"Job {job.id} retried by hand: pending, {job.budget} more attempts")
        return job

    def prune(self, older_than_s: float) -> int:
        """Delete finished jobs (their attempts and log lines too) that finished more than `older_than_s` seconds
        ago, and the log lines older than settings.log_retention. Returns how many jobs."""
        pruned = self._store.jobs_prune(checks.non_negative("older_than", older_than_s))
        self._store.log_lines_prune(self.settings.log_retention)
        return pruned

    # logs and changes (what the HTTP API shows) ---------------------------------------------------------

    def log_tail(self, file: str, n: int) -> list[LogLine]:
        """The last `n` (1 to MAX_LOG_TAIL) lines of the job log ("job") or the error log ("error"), oldest first,
        as every process wrote them (the database's copy of the files)."""
        if file not in LOG_FILES:
            raise InvalidInput(f"file must be one of {', '.join(LOG_FILES)}, got {file!r:.120}")
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LOG_TAIL:
            raise InvalidInput(f"n must be an integer from 1 to {MAX_LOG_TAIL}, got {n!r:.120}")
        return self._store.log_lines_tail(file, n)

    def changes(self, since: datetime, limit: int = 500) -> list[JobChange]:
        """Jobs whose status or cancel request changed at or after `since` (the database's clock, naive UTC),
        oldest change first, each as it is now. One read: a reader that polls uses change_feed(), which also
        catches changes whose transaction committed late."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CHANGES:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_CHANGES}, got {limit!r:.120}")
        return self._store.jobs_changed_since(checks.naive_utc(since, "since"), limit)

    def change_feed(self, since: datetime | None = None) -> ChangeFeed:
        """Every change from `since` (default: now, on the database's clock), each once, poll by poll."""
        start = self._store.now() if since is None else checks.naive_utc(since, "since")
        store = self._store
        return ChangeFeed(lambda at, limit, after_id: store.jobs_changed_since(at, limit, after_id=after_id), start)

    def listen_changes(self, callback: Callable[[], None]) -> Listener | None:
        """Call `callback` (on a thread of its own) soon after jobs change, and after a lost connection came
        back (changes may have been missed meanwhile): PostgreSQL's NOTIFY. None where the caller must poll
        (SQLite, MariaDB). Stop it with .stop()."""
        return self._store.listen_changes(lambda _channel, _payload: callback())

    def workers(self) -> list[WorkerInfo]:
        """The live workers: those whose heartbeat is within lease_timeout."""
        return self._store.workers_list(alive_within_s=self.settings.lease_timeout)

    # observe: what the HTTP API's /readyz and /metrics read ----------------------------------------------

    def ping(self) -> None:
        """One round trip to the database (readiness); raises StoreError when it can't be made."""
        self._store.database_ping()

    def finished_recently(
        self, window_s: float = RECENT_WINDOW_S, bounds: Sequence[float] = DURATION_BOUNDS_S
    ) -> RecentFinishes:
        """The jobs completed or failed in the last `window_s` seconds (1 s to 1 day): a histogram of their
        last attempt's duration over `bounds` (ascending seconds, at most 50) and their attempts by outcome."""
        if not isinstance(window_s, int | float) or not 1 <= window_s <= 86_400:
            raise InvalidInput("window_s must be 1 to 86400 seconds")
        checked = tuple(float(bound) for bound in bounds)
        if (
            not 0 < len(checked) <= 50
            or any(not 0 < b < math.inf for b in checked)
            or sorted(set(checked)) != list(checked)
        ):
            raise InvalidInput("bounds must be 1 to 50 ascending, distinct, positive, finite seconds")
        return self._store.jobs_finished_recently(float(window_s), checked)

    # operators' reads and actions -----------------------------------------------------------------------

    def search(self, search: JobSearch) -> JobPage:
        """A page of jobs matching `search`, newest first (keyset: pass next_before_id as before_id)."""
        return self._store.jobs_search(check_search(search))

    def count(self, search: JobSearch, cap: int = 10_000) -> Count:
        """How many jobs match, counted up to `cap` (past it: Count(cap, exact=False)); limit and before_id
        don't bound it."""
        if isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= MAX_COUNT_CAP:
            raise InvalidInput(f"cap must be 1 to {MAX_COUNT_CAP}, got {checks.shown(cap, 80)}")
        return self._store.jobs_count(check_search(search), cap)

    def stats(self) -> Stats:
        return self._store.jobs_stats()

    def queues(self) -> list[QueueInfo]:
        """Every queue that has jobs or was ever paused or resumed."""
        return self._store.queues_info()

    def pause(self, queue: str, *, actor: str) -> QueueInfo:
        """Workers stop claiming from `queue` within about a second (running jobs go on)."""
        return self._store.queue_set_paused(checks.queue_name(queue), True, _actor(actor))

    def resume(self, queue: str, *, actor: str) -> QueueInfo:
        return self._store.queue_set_paused(checks.queue_name(queue), False, _actor(actor))

    def failure_groups(self, limit: int = 50) -> list[FailureGroup]:
        """Failed jobs grouped by error type, target and method, largest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_GROUPS:
            raise InvalidInput(f"limit must be 1 to {MAX_GROUPS}, got {checks.shown(limit, 80)}")
        return self._store.failure_groups(limit)

    def bulk_start(self, action: str, search: JobSearch, *, actor: str) -> BulkRun:
        """Cancel or retry every job `search` matches (not one page: limit is ignored), in batches on a thread
        of this process; returns the run at once (bulk_get follows its progress)."""
        from errands import bulk

        if action not in bulk.ACTIONS:
            raise InvalidInput(f"action must be one of {', '.join(bulk.ACTIONS)}, got {checks.shown(action, 80)}")
        run, walked = bulk.new_run(self._store, action, check_search(search), _actor(actor))
        self.log.info(None, f"Bulk run {run.id} started by {run.created_by}: {action} {search_to_json(walked)}")
        walk = bulk.BulkAction(self._store, self.log, run, walked, self.settings.max_retries)
        self._bulk_threads = [thread for thread in self._bulk_threads if thread.is_alive()]
        self._bulk_threads.append(walk.start())
        return run

    def bulk_get(self, run_id: int) -> BulkRun:
        """Raises BulkRunNotFound (an id no run can have too)."""
        from errands.bulk import STALE_AFTER_S

        if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id not in checks.JOB_IDS:
            raise BulkRunNotFound(run_id) if isinstance(run_id, int) else InvalidInput("a bulk run id is an int")
        return self._store.bulk_run_get(run_id, stale_after_s=STALE_AFTER_S)


MAX_COUNT_CAP = 10_000_000
MAX_LOG_TAIL = 1000  # lines of a log read at once (the Laravel runner showed the last 10)
MAX_CHANGES = 10_000
MAX_GROUPS = 500
MAX_ACTOR = 255  # errands_queues.changed_by, errands_bulk_runs.created_by
BULK_JOIN_S = 10.0


def _actor(actor: Any) -> str:
    if not isinstance(actor, str) or not 1 <= len(actor) <= MAX_ACTOR or not checks.is_text(actor) or "\x00" in actor:
        raise InvalidInput(f"actor must be 1-{MAX_ACTOR} characters of text, got {checks.shown(actor, 80)}")
    return actor
