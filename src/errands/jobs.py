"""The job model: states, the transition table, and the values the store returns. Pure, no I/O.

State transitions (every one is a guarded UPDATE that names the state it leaves):

    pending   -> running     claimed by a worker or run-job (lease set, attempts + 1)
    pending   -> cancelled   cancelled before it ran
    running   -> completed   the attempt returned
    running   -> pending     the attempt failed and the retry budget allows another (scheduled_at = now + backoff),
                             the lease expired and the crash budget allows another (attempt: lost),
                             or the worker shut down and released it (attempt: released)
    running   -> failed      the retry budget or the crash budget is spent
    running   -> cancelled   cancel was requested and the child was stopped
    failed    -> pending     manual retry (a fresh budget; attempts keeps counting)
    cancelled -> pending     manual retry
    completed is final.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from errands.clock import iso


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class AttemptOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    LOST = "lost"
    CANCELLED = "cancelled"
    RELEASED = "released"


# Every state change the store makes is one of these: the conformance suite runs under a trigger that refuses any
# other (tests/store/conftest.py), and a property test drives the store through random calls against it.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.COMPLETED, JobState.PENDING, JobState.FAILED, JobState.CANCELLED}),
    JobState.FAILED: frozenset({JobState.PENDING}),
    JobState.CANCELLED: frozenset({JobState.PENDING}),
    JobState.COMPLETED: frozenset(),
}


def can_transition(from_: JobState, to: JobState) -> bool:
    return to in TRANSITIONS[from_]


REDACTED = "***"


@dataclass(frozen=True)
class FollowUp:
    """A job to create after its parent completes: `then=` entries and `next_job()` results."""

    target: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "method": self.method, "args": list(self.args), "kwargs": self.kwargs}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FollowUp:
        return cls(raw["target"], raw.get("method", ""), tuple(raw.get("args", ())), dict(raw.get("kwargs", {})))


@dataclass(frozen=True)
class Lease:
    """Who holds a job: a pending job with a live lease is reserved for its owner (run-job, a detached
    process); a running job's lease is renewed by its owner's heartbeat and checked by every completion."""

    owner: str
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class NewJob:
    target: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 1
    max_attempts: int = 3
    attempts_pinned: bool = False  # max_attempts was given for this job: per-exception rules don't apply
    delay_s: float = 0.0
    scheduled_at: datetime | None = None  # wins over delay_s
    timeout_s: float | None = None
    sensitive: bool = False
    then: tuple[FollowUp, ...] = ()
    parent_id: int | None = None


@dataclass(frozen=True)
class Job:
    id: int
    queue: str
    target: str
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    priority: int
    status: JobState
    attempts: int
    max_attempts: int
    uncharged_attempts: int  # attempts that don't count against the retry budget (lost, released, earlier budgets)
    lost_attempts: int
    attempts_pinned: bool
    scheduled_at: datetime
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timeout_s: float | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    result: Any
    parent_id: int | None
    then: tuple[FollowUp, ...]
    sensitive: bool
    cancel_requested: bool
    lease: Lease | None

    @property
    def budget(self) -> int:
        """Attempts allowed in the current retry budget."""
        return self.max_attempts - self.uncharged_attempts

    @property
    def charged_attempts(self) -> int:
        return self.attempts - self.uncharged_attempts

    @property
    def display_name(self) -> str:
        return f"{self.target}::{self.method}" if self.method else self.target

    def shown_args(self) -> tuple[list[Any], dict[str, Any]]:
        """Arguments as logs, the CLI and the API may show them."""
        if self.sensitive:
            return [REDACTED] * len(self.args), {k: REDACTED for k in self.kwargs}
        return list(self.args), dict(self.kwargs)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON contract (docs/cli.md): scripts rely on these keys."""
        args, kwargs = self.shown_args()
        return {
            "id": self.id,
            "queue": self.queue,
            "target": self.target,
            "method": self.method,
            "args": args,
            "kwargs": kwargs,
            "priority": self.priority,
            "status": self.status.value,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "parent_id": self.parent_id,
            "scheduled_at": iso(self.scheduled_at),
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "timeout": self.timeout_s,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "result": REDACTED if self.sensitive and self.result is not None else self.result,
            "sensitive": self.sensitive,
            "cancel_requested": self.cancel_requested,
        }


@dataclass(frozen=True)
class Attempt:
    job_id: int
    number: int
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome | None  # None while it runs
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    worker: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "outcome": self.outcome.value if self.outcome else None,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "traceback": self.error_traceback,
            "worker": self.worker,
        }


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str | None = None
    mro: tuple[str, ...] = ()  # qualified names of the exception's classes, most specific first


# one encoder for every call: json.dumps with options builds a new one each time
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def safe_text(text: str) -> str:
    """`text` as every backend and log file takes it: NUL escaped as \\x00 (PostgreSQL's TEXT refuses NUL), lone
    surrogates escaped (they are not UTF-8). What a job raised is hostile input."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def dumps(value: Any) -> str:
    """JSON for the database: compact, and anything the job returned that JSON can't hold becomes its str()."""
    return _ENCODER.encode(value)


@dataclass(frozen=True)
class WorkerInfo:
    """A worker as `errands workers` shows it: registered at start, its heartbeat renewed while it lives."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]  # empty: every queue
    concurrency: int
    started_at: datetime
    heartbeat_at: datetime

    def serves(self, queue: str) -> bool:
        return not self.queues or queue in self.queues
