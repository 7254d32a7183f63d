"""errands: background jobs for Python on a real database.

The public API. Application code enqueues through these; `connect()` gives a Client for explicit use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from errands.client import Client, JobRequest, ThenStep
from errands.errors import (
    ConfigError,
    ErrandsError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    NotMigrated,
    StoreError,
    TargetNotAllowed,
)
from errands.jobs import Attempt, AttemptOutcome, FollowUp, Job, JobState
from errands.settings import Settings, load_settings

__all__ = [
    # enqueue and run
    "enqueue",
    "enqueue_many",
    "run_background_job",
    "JobRequest",
    "FollowUp",
    # look and act
    "get_job",
    "cancel",
    "retry",
    "connect",
    "Client",
    # values
    "Job",
    "JobState",
    "Attempt",
    "AttemptOutcome",
    "Settings",
    "load_settings",
    # errors
    "ErrandsError",
    "ConfigError",
    "StoreError",
    "NotMigrated",
    "InvalidInput",
    "TargetNotAllowed",
    "JobNotFound",
    "InvalidTransition",
]


def connect(settings: Settings | None = None) -> Client:
    """A Client on the configured database (the SQLite default is migrated on first use)."""
    from errands.store import open_store

    settings = settings or load_settings()
    return Client(settings, open_store(settings.database_url))


@cache
def _default() -> Client:
    return connect()


def enqueue(
    target: str,
    method: str = "",
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    priority: int | None = None,
    queue: str = "default",
    delay: float = 0,
    at: datetime | None = None,
    timeout: float | None = None,
    max_attempts: int | None = None,
    then: Iterable[ThenStep] = (),
    sensitive: bool = False,
) -> int:
    """Record a job for the workers; returns its id. Refused targets raise TargetNotAllowed."""
    request = JobRequest(
        target, method, args, kwargs, priority, queue, delay, at, timeout, max_attempts, tuple(then), sensitive
    )
    return _default().enqueue(request)


def enqueue_many(requests: Iterable[JobRequest]) -> list[int]:
    """Record a batch in one transaction (all or nothing); ids in order."""
    return _default().enqueue_many(requests)


def run_background_job(
    target: str,
    method: str,
    params: Sequence[Any] = (),
    priority: int | None = None,
    *,
    delay: float = 0,
    queue: str = "default",
) -> int:
    """Record a job and run it in a detached OS process (or only enqueue it, with dispatch = "queue")."""
    from errands.spawn import run_background_job as spawn

    return spawn(_default(), target, method, params, priority, delay=delay, queue=queue)


def get_job(job_id: int) -> Job:
    return _default().get(job_id)


def cancel(job_id: int) -> Job:
    return _default().cancel(job_id)


def retry(job_id: int) -> Job:
    return _default().retry(job_id)
