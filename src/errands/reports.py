"""What operators read about jobs: the search filter, pages, stats, queues, failure groups, log lines (pure values).

The HTTP API and the CLI render these; the store computes them without full-table COUNTs (counts are capped or
estimated, and say which).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from errands.jobs import Job, JobState

NO_ARGS_FILTER: Any = None


@dataclass(frozen=True)
class JobSearch:
    """A filter over jobs, newest first, with keyset paging (`before_id`).

    `args`: a JSON value. An object matches jobs whose kwargs contain it ({"customer_id": 42}); any other value
    matches jobs whose positional args contain it (42, or [42, "x"] for both). `text` matches a substring of the
    target or the error message, case-insensitively.
    """

    statuses: tuple[JobState, ...] = ()
    queue: str | None = None
    target: str | None = None
    text: str | None = None
    args: Any = NO_ARGS_FILTER
    created_after: datetime | None = None
    created_before: datetime | None = None
    parent_id: int | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_before_id: int | None  # None: no older page


@dataclass(frozen=True)
class Count:
    value: int
    exact: bool  # False: capped (value is the cap: "at least") or estimated from the planner's statistics


@dataclass(frozen=True)
class MinuteCounts:
    minute: datetime  # the minute's start, naive UTC
    completed: int
    failed: int


@dataclass(frozen=True)
class Stats:
    by_status: dict[str, Count]
    by_queue: dict[str, dict[str, Count]]  # queue -> status -> count (unfinished statuses only: exact)
    per_minute: list[MinuteCounts]  # the last hour, oldest first, every minute present
    oldest_due: dict[str, datetime]  # queue -> the scheduled_at of its oldest due pending job


@dataclass(frozen=True)
class QueueInfo:
    name: str
    paused: bool
    pending: int  # due or not
    due: int  # pending and due now: the autoscaling signal
    running: int
    oldest_due_at: datetime | None
    oldest_due_age_s: float  # 0 when nothing is due


@dataclass(frozen=True)
class FailureGroup:
    error_type: str
    target: str
    method: str
    count: int
    first_at: datetime
    last_at: datetime
    sample_job_id: int  # the newest job of the group, for its message and traceback
    sample_message: str | None


@dataclass(frozen=True)
class LogLine:
    id: int
    file: str  # "job" or "error"
    line: str  # exactly as written to the file, without its newline


@dataclass(frozen=True)
class BulkRun:
    """A bulk cancel or retry by filter: done in batches in the background; its progress is a database row."""

    id: int
    action: str  # "cancel" or "retry"
    search: dict[str, Any]  # the filter, as the API took it
    status: str  # "running", "done", "failed"
    total: int  # jobs matched when it started
    done: int  # jobs acted on so far
    skipped: int  # matched jobs whose state forbade the action by the time the batch reached them
    created_by: str
    created_at: datetime
    finished_at: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class JobChange:
    """A job as the event stream sends it: its state after a change."""

    job: Job
    changed_at: datetime = field(compare=False)


@dataclass(frozen=True)
class RecentFinishes:
    """The jobs that finished (completed or failed) in the last `window_s` seconds: what /metrics shows of
    recent work. A window, not a running total: pruning can't lower it, and it needs no state between scrapes.

    `buckets[i]` counts the jobs whose last attempt ran at most `bounds[i]` seconds (cumulative, as Prometheus
    histograms are); `attempts` counts every attempt these jobs made, by outcome (retries, timeouts, losses).
    """

    window_s: float
    bounds: tuple[float, ...]
    buckets: tuple[int, ...]
    count: int
    sum_s: float
    by_status: dict[str, int]  # "completed", "failed" -> jobs
    attempts: dict[str, int]  # attempt outcome -> attempts
