"""Core values built by hand, for tests of pure logic (a Job without a database)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from errands.jobs import Job, JobState

MOMENT = datetime(2026, 1, 1, 12, 0, 0)

# the keys of Job.to_json() that scripts rely on (docs/cli.md): the model's test and the CLI's check them
JOB_JSON_KEYS = frozenset(
    {
        "id",
        "queue",
        "target",
        "method",
        "args",
        "kwargs",
        "priority",
        "status",
        "attempts",
        "max_attempts",
        "parent_id",
        "scheduled_at",
        "created_at",
        "started_at",
        "finished_at",
        "error_type",
        "error_message",
    }
)


def make_job(**overrides: Any) -> Job:
    """A running first attempt of SampleJob.process("test1", "test2"), as job 7; override any field."""
    fields: dict[str, Any] = {
        "id": 7,
        "queue": "default",
        "target": "examples.jobs.SampleJob",
        "method": "process",
        "args": ("test1", "test2"),
        "kwargs": {},
        "priority": 1,
        "status": JobState.RUNNING,
        "attempts": 1,
        "max_attempts": 3,
        "uncharged_attempts": 0,
        "lost_attempts": 0,
        "attempts_pinned": False,
        "scheduled_at": MOMENT,
        "created_at": MOMENT,
        "started_at": MOMENT,
        "finished_at": None,
        "timeout_s": None,
        "error_type": None,
        "error_message": None,
        "error_traceback": None,
        "result": None,
        "parent_id": None,
        "then": (),
        "sensitive": False,
        "cancel_requested": False,
        "lease": None,
    }
    fields.update(overrides)
    return Job(**fields)
