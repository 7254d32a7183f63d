"""errands: background jobs for Python on a real database.

The public API. Application code enqueues through these; `connect()` gives a Client for explicit use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from errands.errors import (
    ConfigError,
    ErrandsError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    NotMigrated,
    StoreError,
    StoreUnavailable,
    TargetNotAllowed,
)
from errands.jobs import Attempt, AttemptOutcome, FollowUp, Job, JobState

if TYPE_CHECKING:
    from errands.client import Client, JobRequest, ThenStep
    from errands.settings import Settings, load_settings

# Loaded on first use, so a process that only runs jobs (a worker's child) doesn't import the database layer.
_LAZY = {
    "Client": "errands.client",
    "JobRequest": "errands.client",
    "Settings": "errands.settings",
    "load_settings": "errands.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'errands' has no attribute {name!r}")


__all__ = [
    # enqueue and run
    "enqueue",
    "enqueue_many",
    "run_background_job",
    "JobRequest",
    "FollowUp",
    # look and act
    "get_job",
    "cancel_job",
    "retry_job",
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
    "StoreUnavailable",
    "InvalidInput",
    "TargetNotAllowed",
    "JobNotFound",
    "InvalidTransition",
]


def connect(settings: Settings | None = None) -> Client:
    """A Client on the database of `settings` (default: the configured one; the SQLite default is migrated on
    first use). What it starts (a detached process, a job run now) runs with these settings."""
    from errands.client import connect

    return connect(settings)


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
    from errands.client import JobRequest

    request = JobRequest(
        target,
        method,
        args=args,
        kwargs=kwargs,
        priority=priority,
        queue=queue,
        delay=delay,
        at=at,
        timeout=timeout,
        max_attempts=max_attempts,
        then=then,  # as given: the client checks it (None or a non-iterable is InvalidInput, not TypeError)
        sensitive=sensitive,
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
    return _default().run_background_job(target, method, params, priority, delay=delay, queue=queue)


def get_job(job_id: int) -> Job:
    return _default().get(job_id)


def cancel_job(job_id: int) -> Job:
    """Cancel a pending job now, or ask a running one's worker to stop it. (Not `cancel`/`retry`: those
    names would clash with the submodules errands.retry and the like.)"""
    return _default().cancel(job_id)


def retry_job(job_id: int) -> Job:
    return _default().retry(job_id)
