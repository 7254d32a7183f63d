"""errands.testing.drain: enqueued jobs run inline in the test's process, as a worker would run them."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from errands.client import Client, JobRequest, connect
from errands.jobs import JobState
from errands.settings import Settings
from errands.testing import drain

JOBS = """
DONE = []


def record(name):
    DONE.append(name)
    return name


def fail():
    raise RuntimeError("boom")


class Chain:
    def start(self, name):
        DONE.append(name)
        return name

    def next_job(self, result):
        return None if result.endswith("-next") else ("finish", [result + "-next"])

    def finish(self, name):
        DONE.append(name)
        return name
"""

ALLOWED = {"inline_jobs:record": [], "inline_jobs:fail": [], "inline_jobs.Chain": ["start", "finish"]}


@pytest.fixture
def jobs_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "inline_jobs.py").write_text(JOBS)
    monkeypatch.chdir(tmp_path)  # job code is imported from the working directory, as in a worker
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("inline_jobs", None)
    yield importlib.import_module("inline_jobs")
    sys.modules.pop("inline_jobs", None)


def _client(tmp_path: Path, **overrides: Any) -> Client:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'jobs.db'}",
        "allowed_jobs": ALLOWED,
        "log_file": tmp_path / "logs" / "jobs.log",
        "error_log_file": tmp_path / "logs" / "errors.log",
        "retry_delay": 0,
        "retry_jitter": False,
    }
    return connect(Settings(**{**values, **overrides}))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    opened = _client(tmp_path)
    yield opened
    opened.close()


def test_drain_runs_due_jobs_in_priority_order_with_their_follow_ups(client: Client, jobs_module: Any) -> None:
    low = client.enqueue(JobRequest("inline_jobs:record", args=["low"], priority=1))
    high = client.enqueue(
        JobRequest("inline_jobs.Chain", "start", args=["high"], priority=5, then=[("inline_jobs:record", "", ["then"])])
    )
    ran = drain(client)
    # high first; its follow-ups (next_job()'s, then the `then` step) carry its priority, so they run before low
    assert jobs_module.DONE == ["high", "high-next", "then", "low"]
    assert [job.status for job in ran] == [JobState.COMPLETED] * 4
    assert [ran[0].id, ran[-1].id] == [high, low]
    assert sorted(client.follow_ups(high)) == [ran[1].id, ran[2].id]
    assert drain(client) == []  # nothing left


def test_drain_retries_by_the_settings_and_fails_when_the_budget_is_spent(tmp_path: Path, jobs_module: Any) -> None:
    client = _client(tmp_path, max_retries=3)
    try:
        job_id = client.enqueue(JobRequest("inline_jobs:fail"))
        ran = drain(client)
    finally:
        client.close()
    assert [(job.id, job.status, job.attempts) for job in ran] == [
        (job_id, JobState.PENDING, 1),
        (job_id, JobState.PENDING, 2),
        (job_id, JobState.FAILED, 3),
    ]
    assert ran[-1].error_type == "RuntimeError"


def test_a_retry_that_is_not_due_waits_for_a_later_now(tmp_path: Path, jobs_module: Any) -> None:
    client = _client(tmp_path, retry_delay=60, max_retries=2)
    try:
        job_id = client.enqueue(JobRequest("inline_jobs:fail"))
        [first] = drain(client)
        assert (first.status, first.attempts) == (JobState.PENDING, 1)
        assert drain(client) == []  # the retry is a minute away
        [second] = drain(client, now=first.scheduled_at)
    finally:
        client.close()
    assert (second.id, second.status, second.attempts) == (job_id, JobState.FAILED, 2)


def test_the_allow_list_is_checked_when_the_job_runs(tmp_path: Path, jobs_module: Any) -> None:
    enqueuer = _client(tmp_path)
    runner = _client(tmp_path, allowed_jobs={"inline_jobs:fail": []})  # record is not allowed here
    try:
        job_id = enqueuer.enqueue(JobRequest("inline_jobs:record", args=["never"]))
        [job] = drain(runner)
    finally:
        enqueuer.close()
        runner.close()
    assert (job.id, job.status, job.attempts) == (job_id, JobState.FAILED, 1)  # refused: never retried
    assert job.error_type == "errands.errors.TargetNotAllowed"
    assert jobs_module.DONE == []
