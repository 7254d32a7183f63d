"""The Store protocol: the one seam between errands and a database.

Methods read as entity + verb, take small values from errands.jobs, and return core values, never driver rows
or driver exceptions (a driver error surfaces as StoreError with the driver's exception as its cause).
`now=None` everywhere means "the database's clock"; tests pass a time to move the clock by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from errands.access import AuditEntry, Identity, Role, Scope, TokenInfo, User
from errands.jobs import Attempt, AttemptOutcome, ErrorInfo, Job, JobState, Lease, NewJob
from errands.jobs import WorkerInfo as WorkerInfo  # a public value; the store's protocol speaks it too
from errands.logs import LogRow
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


@dataclass(frozen=True)
class JobFilter:
    status: JobState | None = None
    queue: str | None = None
    target: str | None = None
    parent_id: int | None = None
    limit: int = 100
    before_id: int | None = None  # keyset pagination: ids below this, newest first


@dataclass(frozen=True)
class Claim:
    """Who claims, for how long. `queues` empty means every queue; `exclude`: queues not to claim from now
    (the paused ones)."""

    owner: str
    token: str
    lease_s: float
    worker: str  # host:pid, recorded on the attempt
    queues: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt, as the owner of its lease reports it.

    next_state is where the job goes: completed, failed, cancelled, or pending (a retry at retry_at; with
    outcome released, a return that doesn't spend the budget). Follow-ups are inserted only when the job
    completes, in the same transaction, with parent_id set. `reserve` keeps a retried job and gives its
    follow-ups to that lease's owner (run-job) instead of the workers.
    """

    job_id: int
    token: str
    attempt: int
    outcome: AttemptOutcome
    next_state: JobState
    result: Any = None
    error: ErrorInfo | None = None
    retry_at: datetime | None = None
    retry_in_s: float | None = None  # instead of retry_at: seconds after the database's now at the write
    follow_ups: tuple[NewJob, ...] = ()
    reserve: Lease | None = None


@dataclass(frozen=True)
class Finished:
    job_id: int
    recorded: bool  # False: the lease was no longer ours (fenced off); nothing was written
    follow_up_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Rescued:
    job_id: int
    attempt: int
    failed: bool  # the crash budget was spent: the job is now failed ("worker lost")


@dataclass(frozen=True)
class RetryBudget:
    attempts: int  # attempts in the fresh budget


@dataclass(frozen=True)
class Credentials:
    """A user with the hash of their password (only the accounts service reads it)."""

    user: User
    password_hash: str


@dataclass(frozen=True)
class NewSession:
    """A session row: `id` is the SHA-256 (hex) of the cookie's secret part, never the secret itself."""

    id: str
    user_id: int
    csrf_token: str
    max_age_s: float  # the absolute expiry, from its creation
    password_hash: str  # the hash the login verified: no session if the user's hash changed meanwhile


@dataclass(frozen=True)
class NewToken:
    user_id: int
    name: str
    scope: Scope
    token_hash: str  # SHA-256 (hex) of the token
    expires_in_s: float | None  # None: never


@dataclass(frozen=True)
class RateWindow:
    """A fixed window's counter after a hit (or a look): its hits, and the seconds until the window ends."""

    hits: int
    remaining_s: float


class Listener(Protocol):
    def stop(self) -> None: ...


class Store(Protocol):
    url: str
    # False where the database has one writer at a time (SQLite): two write transactions of one process would
    # only wait for each other, so a worker runs its claims and writes one after another
    concurrent_writes: bool

    def close(self) -> None: ...

    def now(self) -> datetime:
        """The database's clock, naive UTC."""
        ...

    # jobs: create and read
    def job_insert(self, new: NewJob, *, reserve: Lease | None = None, now: datetime | None = None) -> int:
        """Insert one pending job; with `reserve`, only that lease's owner may claim it until the lease expires."""
        ...

    def jobs_insert_many(self, news: Sequence[NewJob], *, now: datetime | None = None) -> list[int]:
        """Insert a batch in one transaction and as few round trips as the backend allows; ids in order."""
        ...

    def job_get(self, job_id: int) -> Job:
        """Raises JobNotFound."""
        ...

    def jobs_list(self, where: JobFilter) -> list[Job]: ...

    def job_attempts(self, job_id: int) -> list[Attempt]: ...

    def job_follow_ups(self, job_id: int) -> list[int]: ...

    def jobs_count_by_status(self) -> dict[str, int]: ...

    # jobs: the lease life cycle
    def jobs_claim(self, claim: Claim, limit: int, *, now: datetime | None = None) -> list[Job]:
        """Lock and claim up to `limit` due, unreserved pending jobs, highest priority first, then earliest
        scheduled_at, then lowest id: pending -> running, attempts + 1, a lease, an attempt row."""
        ...

    def job_claim_by_id(self, job_id: int, claim: Claim, *, now: datetime | None = None) -> Job | None:
        """Claim one pending job that is unreserved or reserved by `claim.token`, due or not
        (its owner has already waited). None when the job isn't pending or is someone else's."""
        ...

    def jobs_finish(self, outcomes: Sequence[Outcome], *, now: datetime | None = None) -> list[Finished]:
        """Record attempt outcomes in one transaction. Each write is guarded: status = running and
        lease_token = the outcome's token; a stale token changes nothing (Finished.recorded = False).
        Error texts and results are made storable first (NUL escaped, lengths bounded); should the database
        still refuse the batch's values, each outcome is written on its own, and one it refuses alone is
        recorded failed as "UnstorableOutcome": never left running."""
        ...

    def leases_renew(
        self, owner: str, held: Mapping[int, str], lease_s: float, *, now: datetime | None = None
    ) -> set[int]:
        """Extend the leases of the owner's running or reserved jobs (`held`: job id -> lease token) that still
        carry these tokens. Returns the ids of those it extended (the others are no longer this owner's)."""
        ...

    def jobs_rescue_expired(self, crash_budget: int, *, now: datetime | None = None) -> list[Rescued]:
        """Running jobs whose lease expired: back to pending (attempt: lost) or, once `crash_budget` lost
        attempts are spent, failed with "worker lost"."""
        ...

    def jobs_cancel_requested(self, job_ids: Sequence[int]) -> list[int]:
        """Which of these running jobs have a cancel request."""
        ...

    # jobs: operator actions
    def job_cancel(self, job_id: int, *, now: datetime | None = None) -> Job:
        """pending -> cancelled at once; running -> cancel requested (its owner stops it). Raises
        InvalidTransition for finished jobs and JobNotFound."""
        ...

    def job_retry(self, job_id: int, budget: RetryBudget, *, now: datetime | None = None) -> Job:
        """failed or cancelled -> pending, due now, with a fresh budget. Raises InvalidTransition, JobNotFound."""
        ...

    # workers and named locks
    def worker_register(self, info: WorkerInfo) -> None: ...

    def worker_heartbeat(self, worker_id: str, *, now: datetime | None = None) -> None: ...

    def worker_deregister(self, worker_id: str) -> None: ...

    def workers_list(self, alive_within_s: float, *, now: datetime | None = None) -> list[WorkerInfo]: ...

    def lock_acquire(self, name: str, owner: str, ttl_s: float, *, now: datetime | None = None) -> bool:
        """Take or renew a named lease; False while another owner holds it unexpired."""
        ...

    def listen(
        self, callback: Callable[[str, str], None], on_error: Callable[[str], None] | None = None
    ) -> Listener | None:
        """Call back (channel, payload) on enqueues and cancel requests, where the backend can push them
        (PostgreSQL LISTEN/NOTIFY, SQLite's WAL watch); None where the caller must poll. The listener's thread
        outlives a callback that raises and a lost connection: each is told to `on_error` in one line (by
        default, Python's logging) and it goes on."""
        ...

    def jobs_prune(self, older_than_s: float, *, now: datetime | None = None) -> int:
        """Delete finished (completed, failed, cancelled) jobs, their attempts and their log lines, finished
        before now - age, in short transactions (a long one would hold SQLite's write lock from heartbeats and
        renewals)."""
        ...

    # logs: the job log's and the error log's lines, also kept in the database (store/loglines.py) --------------

    def log_lines_insert(self, rows: Sequence[LogRow], *, now: datetime | None = None) -> None:
        """Insert a batch of lines (file "job" or "error", job id, the file's line without its newline) in one
        transaction, at the database's clock; a line is made storable (NUL escaped, bounded)."""
        ...

    def log_lines_tail(self, file: str, n: int) -> list[LogLine]:
        """The last `n` lines of that file ("job" or "error"), oldest first."""
        ...

    def log_lines_prune(self, older_than_s: float, *, now: datetime | None = None) -> int:
        """Delete lines stored before now - age, oldest first, in short transactions; how many."""
        ...

    # changes: what the event stream reads (store/changed.py) ---------------------------------------------------

    def jobs_changed_since(self, since: datetime, limit: int, *, after_id: int | None = None) -> list[JobChange]:
        """Jobs whose status or cancel request changed at or after `since` (changed_at, the database's clock),
        ordered by changed_at then id, at most `limit`; with `after_id`, only those after (since, after_id) in
        that order (the next page). A job appears once, as it is now. A transaction that commits late shows
        changes older than those read before it: read again from a little before (errands.changes.ChangeFeed)."""
        ...

    def listen_changes(
        self, callback: Callable[[str, str], None], on_error: Callable[[str], None] | None = None
    ) -> Listener | None:
        """Call back (channel, "") after commits that changed jobs (PostgreSQL: NOTIFY on errands_changes, at
        most one per statement or transaction); None where the caller must poll. As listen() for failures."""
        ...

    # accounts: users, sessions, API tokens, rate-limit counters, the audit trail, shared facts ---------------
    # User names arrive checked and normalized (errands.accounts); the store compares them exactly.

    def user_insert(self, name: str, role: Role, password_hash: str, *, now: datetime | None = None) -> User:
        """Raises UserExists (two racing inserts of one name: one wins, the other raises)."""
        ...

    def user_by_name(self, name: str) -> Credentials | None: ...

    def user_get(self, user_id: int) -> User | None: ...

    def users_list(self) -> list[User]:
        """Every user, by name."""
        ...

    def user_set_password(self, name: str, password_hash: str, *, now: datetime | None = None) -> None:
        """A new hash, and the user's sessions deleted in the same transaction. Raises UserNotFound."""
        ...

    def user_rehash(self, user_id: int, old_hash: str, new_hash: str) -> bool:
        """The same password under new hashing parameters: sessions stay. Written only while the hash is still
        `old_hash` (a password changed meanwhile wins); whether it was written."""
        ...

    def user_delete(self, name: str, *, now: datetime | None = None) -> None:
        """Delete the user and their sessions, and revoke their tokens, in one transaction. Raises UserNotFound."""
        ...

    def session_insert(self, session: NewSession, *, now: datetime | None = None) -> bool:
        """Insert it only while the user exists and still has `session.password_hash` (a password changed or a
        user deleted while the login was verifying makes no session); whether it did."""
        ...

    def session_get(self, session_id: str, idle_s: float, *, now: datetime | None = None) -> Identity | None:
        """The session's identity while it lives: None when unknown, past its absolute expiry, idle for
        `idle_s`, or its user is gone (an expired row is deleted). Touches last_seen_at at most once a
        minute (SESSION_TOUCH_S), so a busy session costs a write a minute, not one per request."""
        ...

    def session_delete(self, session_id: str) -> None: ...

    def sessions_prune(self, idle_s: float, *, now: datetime | None = None) -> int:
        """Delete expired and idle sessions; how many."""
        ...

    def token_insert(self, new: NewToken, *, now: datetime | None = None) -> TokenInfo:
        """Raises UserNotFound when the user is gone (deleted meanwhile)."""
        ...

    def token_by_hash(self, token_hash: str, *, now: datetime | None = None) -> Identity | None:
        """The identity a live token acts as: None when unknown, revoked, expired or its user is gone. Touches
        last_used_at at most once a minute (token_touch)."""
        ...

    def tokens_list(self) -> list[TokenInfo]:
        """Every token, newest first, revoked ones too (a deleted user's show as `#<user id>`)."""
        ...

    def token_revoke(self, token_id: int, *, now: datetime | None = None) -> TokenInfo:
        """Revoke it (a revoked token keeps its first revoked_at). Raises TokenNotFound."""
        ...

    def token_touch(self, token_id: int, *, now: datetime | None = None) -> None:
        """last_used_at = now, unless it is less than a minute old."""
        ...

    def rate_hit(self, key: str, window_s: float, *, now: datetime | None = None) -> RateWindow:
        """Count one hit for `key` in the fixed window holding now (windows start at multiples of `window_s`
        since the epoch): one atomic upsert-increment, so concurrent hits from many replicas all count."""
        ...

    def rate_count(self, key: str, window_s: float, *, now: datetime | None = None) -> RateWindow:
        """The window's counter without a hit."""
        ...

    def rate_prune(self, window_s: float, *, now: datetime | None = None) -> int:
        """Delete the counters of windows that ended before the current one began; how many."""
        ...

    def audit_insert(
        self, actor: str, action: str, subject: str, detail: str, *, now: datetime | None = None
    ) -> int: ...

    def audit_list(self, limit: int, before_id: int | None = None) -> list[AuditEntry]:
        """Newest first; `before_id`: entries older than that one (keyset paging)."""
        ...

    def meta_get_or_insert(self, key: str, value: str) -> str:
        """The value stored under `key`, storing `value` first if there is none. Race-safe: processes that
        start at once all get the one value that was stored."""
        ...

    # observe: what the HTTP API's /readyz and /metrics read (store/observe.py)
    def database_ping(self) -> None:
        """One round trip to the database; raises StoreError when it can't be made."""
        ...

    def jobs_finished_recently(
        self, window_s: float, bounds: Sequence[float], *, now: datetime | None = None
    ) -> RecentFinishes:
        """Completed and failed jobs finished within `window_s` seconds of now: a cumulative histogram of their
        last attempt's duration over `bounds`, their count by status, and their attempts by outcome."""
        ...

    # reports: operators' reads, queue pauses and bulk actions (store/reports.py, store/queues.py, store/bulk.py)
    def jobs_search(self, search: JobSearch) -> JobPage:
        """A page of jobs matching `search`, newest first, below `search.before_id`; next_before_id is set when
        an older page exists. Reads only."""
        ...

    def job_ids_search(self, search: JobSearch) -> list[int]:
        """The ids jobs_search would return (a bulk run's batch), without reading the rows."""
        ...

    def jobs_count(self, search: JobSearch, cap: int) -> Count:
        """How many jobs match, counting at most cap + 1 rows: past `cap` it is Count(cap, exact=False)."""
        ...

    def jobs_stats(self, *, now: datetime | None = None) -> Stats:
        """Counts by status and by queue (unfinished statuses exact; the completed count may be the planner's
        estimate, marked inexact), completions and failures per minute over the last hour, the oldest due
        pending job per queue."""
        ...

    def failure_groups(self, limit: int) -> list[FailureGroup]:
        """Failed jobs grouped by (error_type, target, method), largest groups first."""
        ...

    def queues_info(self, *, now: datetime | None = None) -> list[QueueInfo]:
        """Every queue that has jobs or a row in errands_queues, by name."""
        ...

    def queue_set_paused(self, queue: str, paused: bool, changed_by: str, *, now: datetime | None = None) -> QueueInfo:
        """Pause or resume `queue` (an upsert of its errands_queues row); its jobs stay as they are."""
        ...

    def queues_paused(self) -> frozenset[str]:
        """The paused queues' names (a tiny table: workers read it once a second)."""
        ...

    def jobs_cancel_batch(self, job_ids: Sequence[int], *, now: datetime | None = None) -> BatchDone:
        """job_cancel's rules for many jobs in one transaction: pending -> cancelled, running -> cancel
        requested; any other state (or a job gone) is skipped."""
        ...

    def jobs_retry_batch(
        self, job_ids: Sequence[int], default_budget: int, *, now: datetime | None = None
    ) -> BatchDone:
        """job_retry's rules for many jobs in one transaction: failed or cancelled -> pending with a fresh
        budget (the job's own if it pinned max_attempts, else `default_budget`); others are skipped."""
        ...

    def bulk_run_insert(
        self, action: str, search: Mapping[str, Any], created_by: str, *, now: datetime | None = None
    ) -> BulkRun:
        """A new bulk run, running, with nothing done yet."""
        ...

    def bulk_run_progress(
        self,
        run_id: int,
        *,
        total: int | None = None,
        done: int = 0,
        skipped: int = 0,
        now: datetime | None = None,
    ) -> None:
        """Add a batch's counts (and set the total, once known); renews the run's heartbeat."""
        ...

    def bulk_run_finish(self, run_id: int, error: str | None = None, *, now: datetime | None = None) -> None:
        """The run is done, or failed with `error`."""
        ...

    def bulk_run_get(self, run_id: int, *, stale_after_s: float, now: datetime | None = None) -> BulkRun:
        """Raises BulkRunNotFound. A run still marked running whose heartbeat is older than `stale_after_s`
        (its process died) is recorded failed first."""
        ...


@dataclass(frozen=True)
class BatchDone:
    """What a batch action did: `acted` jobs changed, `skipped` ones whose state forbade it (or gone)."""

    acted: int
    skipped: int
