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

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from errands.changes import ChangeFeed
from errands.clock import utc_now
from errands.errors import InvalidInput, JobNotFound, TargetNotAllowed
from errands.jobs import Attempt, FollowUp, Job, JobState, Lease, NewJob, WorkerInfo, dumps
from errands.logs import LOG_FILES, JobLog, open_log
from errands.logship import LogShipper
from errands.reports import JobChange, LogLine
from errands.settings import MAX_ATTEMPTS, MAX_DURATION_S, Settings, load_settings
from errands.store import open_store
from errands.store.base import JobFilter, Listener, RetryBudget, Store
from errands.targets import check_allowed, normalize_method

ThenStep = FollowUp | Sequence[Any]


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

    def close(self) -> None:
        self.log.close()
        self._store.close()

    # create ---------------------------------------------------------------------------------------------

    def new_job(self, request: JobRequest) -> NewJob:
        """Validate a request into the value the store inserts. Refusals are written to the error log."""
        if not isinstance(request, JobRequest):
            raise InvalidInput(f"a job request must be a JobRequest, got {type(request).__name__}")
        target, method = _target_and_method(request.target, request.method)
        try:
            self._check_allowed(target, method)
            then = _then_size(tuple(self._then_step(step) for step in _arg_list("then", request.then)))
        except TargetNotAllowed as refusal:
            self.log.refused(refusal.target, refusal.method, refusal.reason)
            raise
        return NewJob(
            target=target,
            method=method,
            args=tuple(_json_value("args", _arg_list("args", request.args))),
            kwargs=dict(_json_value("kwargs", _kwarg_dict("kwargs", request.kwargs))),
            queue=queue_name(request.queue),
            priority=self.settings.default_priority if request.priority is None else _int("priority", request.priority),
            max_attempts=_attempts(request.max_attempts) or self.settings.max_retries,
            attempts_pinned=request.max_attempts is not None,
            delay_s=_delay(request.delay),
            scheduled_at=_naive_utc(request.at) if request.at is not None else None,
            timeout_s=_positive("timeout", request.timeout),
            sensitive=_flag("sensitive", request.sensitive),
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
        target, method = _target_and_method(target, method, "then ")
        self._check_allowed(target, method)
        args = _json_value("then args", _arg_list("then args", args))
        kwargs = _json_value("then kwargs", _kwarg_dict("then kwargs", kwargs))
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
        return self._store.job_get(_job_id(job_id))

    def jobs(self, status: JobState | None = None, queue: str | None = None, limit: int = 100) -> list[Job]:
        return self._store.jobs_list(
            JobFilter(status=status, queue=None if queue is None else queue_name(queue), limit=limit)
        )

    def attempts(self, job_id: int) -> list[Attempt]:
        return self._store.job_attempts(_job_id(job_id))

    def follow_ups(self, job_id: int) -> list[int]:
        return self._store.job_follow_ups(_job_id(job_id))

    def cancel(self, job_id: int) -> Job:
        job = self._store.job_cancel(_job_id(job_id))
        if job.status is JobState.CANCELLED:
            self.log.cancelled(job)
        else:
            self.log.info(job, f"Job {job.id}: cancel requested while running")
        return job

    def retry(self, job_id: int) -> Job:
        """A fresh budget: the job's own max_attempts if it was given one, else max_retries."""
        before = self._store.job_get(_job_id(job_id))
        budget = before.budget if before.attempts_pinned else self.settings.max_retries
        job = self._store.job_retry(job_id, RetryBudget(budget))
        self.log.info(job, f"Job {job.id} retried by hand: pending, {job.budget} more attempts")
        return job

    def prune(self, older_than_s: float) -> int:
        """Delete finished jobs (their attempts and log lines too) that finished more than `older_than_s` seconds
        ago, and the log lines older than settings.log_retention. Returns how many jobs."""
        pruned = self._store.jobs_prune(_non_negative("older_than", older_than_s))
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
        return self._store.jobs_changed_since(_naive_utc(since), limit)

    def change_feed(self, since: datetime | None = None) -> ChangeFeed:
        """Every change from `since` (default: now, on the database's clock), each once, poll by poll."""
        start = self._store.now() if since is None else _naive_utc(since)
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


# Limits every backend enforces alike (docs/cli.md lists them): the columns' lengths, 64-bit JSON integers
# (JSON readers of other languages lose bigger ones; Python can't even print 5,000 digits), bounded nesting.
MAX_TARGET = 255
MAX_METHOD = 100
MAX_QUEUE = 100
MAX_NESTING = 100
MAX_THEN_CHARS = 65_535  # `then` is a TEXT column: 64 KiB on MariaDB
MAX_LOG_TAIL = 1000  # lines of a log read at once (the Laravel runner showed the last 10)
MAX_CHANGES = 10_000
_INT64 = range(-(2**63), 2**63)
_JOB_IDS = range(1, 2**63)
_EARLIEST = datetime(1000, 1, 1)  # MariaDB's DATETIME starts at year 1000


def _target_and_method(target: Any, method: Any, where: str = "") -> tuple[str, str]:
    if not isinstance(target, str) or not isinstance(method, str):
        raise InvalidInput(
            f"{where}target and method must be str, got {type(target).__name__} and {type(method).__name__}"
        )
    if len(target) > MAX_TARGET or len(method) > MAX_METHOD:
        raise InvalidInput(f"{where}target is at most {MAX_TARGET} characters and method at most {MAX_METHOD}")
    return target, normalize_method(target, method)


def _then_size(then: tuple[FollowUp, ...]) -> tuple[FollowUp, ...]:
    if then and len(dumps([step.to_json() for step in then])) > MAX_THEN_CHARS:
        raise InvalidInput(f"then is at most {MAX_THEN_CHARS} characters as JSON")
    return then


def _job_id(job_id: Any) -> int:
    """An id no job can have is not found (not an overflow in the driver)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidInput(f"a job id is an int, got {type(job_id).__name__}")
    if job_id not in _JOB_IDS:
        raise JobNotFound(job_id)
    return int(job_id)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, got {value!r}")
    return value


def _text(value: str) -> bool:
    """Text every backend and every JSON reader takes: a lone surrogate (undecodable bytes of a command line)
    is no Unicode text."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any) -> bool:
    """A value that JSON keeps exactly as it is: no round trip needed to normalize or check it."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if kind is int:
        return value in _INT64
    return kind is bool or value is None or (kind is float and math.isfinite(value))


def _check_tree(name: str, value: Any) -> None:
    """Depth, integer range and text, checked without recursion: a value nested 5,000 deep is refused
    with one line, not a RecursionError."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple | dict):
            if depth > MAX_NESTING:
                raise InvalidInput(f"{name} nest at most {MAX_NESTING} levels")
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool) and item not in _INT64:
            raise InvalidInput(f"{name}: integers are 64-bit (-2**63 to 2**63-1), got one of {item.bit_length()} bits")
        elif isinstance(item, str) and not _text(item):
            raise InvalidInput(f"{name}: text must be valid Unicode (no lone surrogates)")


def _json_value(name: str, value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, ...), or InvalidInput. A list or dict of plain
    values (the usual arguments) is that already; anything else is checked and makes the round trip."""
    if (type(value) is list and all(map(_plain, value))) or (type(value) is dict and all(map(_plain, value.values()))):
        return value
    _check_tree(name, value)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be JSON values (no pickle): {exc}") from None


def _arg_list(name: str, value: Any) -> list[Any]:
    # a str is a Sequence too: "abc" must not become ["a", "b", "c"]; a set has no order to call with
    unordered = isinstance(value, str | bytes | bytearray | Mapping | Set)
    if unordered or not isinstance(value, Iterable):
        raise InvalidInput(f"{name} must be a list of JSON values, got {type(value).__name__}")
    return list(value)


def _kwarg_dict(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidInput(f"{name} must be a mapping with str keys, got {type(value).__name__}")
    return dict(value)


def queue_name(queue: Any) -> str:
    """`queue` if it is a name a queue can have (the CLI checks --queue with it too), else InvalidInput."""
    if not isinstance(queue, str) or not queue or len(queue) > MAX_QUEUE:
        raise InvalidInput(f"queue must be 1-{MAX_QUEUE} printable characters, got {queue!r:.120}")
    if not queue.isprintable() or queue.strip() != queue:
        raise InvalidInput(f"queue must be 1-{MAX_QUEUE} printable characters, got {queue!r}")
    return queue


_INT_RANGE = range(-(2**31), 2**31)  # the columns are 32-bit INTEGER on every backend


def _int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _INT_RANGE:
        raise InvalidInput(f"{name} must be a 32-bit integer, got {value!r:.120}")
    return int(value)


def _attempts(value: int | None) -> int | None:
    if value is None:
        return None
    if not 1 <= _int("max_attempts", value) <= MAX_ATTEMPTS:
        raise InvalidInput(f"max_attempts must be 1 to {MAX_ATTEMPTS}, got {value}")
    return int(value)


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
        raise InvalidInput(f"{name} must be a number of seconds >= 0, got {value!r:.120}")
    return float(value)


def _delay(value: float) -> float:
    seconds = _non_negative("delay", value)
    if not seconds:
        return seconds
    try:  # the store adds it to its clock: a delay past year 9999 would raise OverflowError there
        utc_now() + timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidInput(f"delay is too far in the future, got {value!r}") from None
    return seconds


def _naive_utc(moment: Any) -> datetime:
    """The store keeps naive UTC: an aware time is converted, not just stripped of its zone."""
    if not isinstance(moment, datetime):
        raise InvalidInput(f"at must be a datetime, got {type(moment).__name__}")
    try:
        naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
    except OverflowError:  # year 1 at +05:00 is in year 0 in UTC
        raise InvalidInput(f"at is out of range: {moment.isoformat()}") from None
    if naive < _EARLIEST:
        raise InvalidInput(f"at must be in year 1000 or later, got {moment.isoformat()}")
    return naive


def _positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= MAX_DURATION_S):
        raise InvalidInput(f"{name} must be a number of seconds > 0 and <= {MAX_DURATION_S:.0f}, got {value!r:.120}")
    return float(value)
