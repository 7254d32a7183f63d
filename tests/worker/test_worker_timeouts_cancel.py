"""Timeouts and cancellation stop the job's process (and its own subprocesses), on every backend."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import pytest

from errands.jobs import JobState

if TYPE_CHECKING:
    from conftest import Project


def test_timeout_kills_a_job_that_ignores_sigterm_and_retries_per_policy(project: Project) -> None:
    project.start_worker("--concurrency", "1")
    job_id = project.enqueue("ignore_sigterm_and_sleep", 120, timeout=1, max_attempts=2)
    job = project.wait_status(job_id, JobState.FAILED, timeout=60)
    assert job.attempts == 2
    assert job.error_type == "JobTimeout"
    attempts = project.attempts(job_id)
    assert [a.outcome.value if a.outcome else None for a in attempts] == ["timed_out", "timed_out"]
    for attempt in attempts:
        assert attempt.finished_at is not None
        # killed: SIGTERM at 1 s is ignored, SIGKILL follows after the pool's kill grace, long before 120 s
        assert (attempt.finished_at - attempt.started_at).total_seconds() < 30
        assert attempt.error_type == "JobTimeout"

    lines = [line.split() for line in project.read("sigterm.pids").splitlines()]
    assert len(lines) == 2
    children = [int(child) for child, _ in lines]
    assert len(set(children)) == 2  # the killed child was replaced, not reused
    for child, grandchild in ((int(c), int(g)) for c, g in lines):
        with pytest.raises(ProcessLookupError):  # the worker reaped its child
            os.kill(child, 0)
        # the job's own subprocess (same process group) was killed too; as an orphan nobody may reap it
        assert not project.pid_alive(grandchild)
    assert f"Job {job_id} attempt 1 timed out" in project.log_text()


def test_cancelling_a_running_job_kills_it_and_never_retries(project: Project) -> None:
    job_id = project.enqueue("wait_for_file", "hold", max_attempts=3)
    worker = project.start_worker("--concurrency", "1")
    [pid] = project.wait_file("hold.started")
    assert project.job(job_id).status is JobState.RUNNING

    done = project.cli("jobs", "cancel", str(job_id))
    asked = time.monotonic()
    assert done.returncode == 0, done.stderr
    assert "cancel requested" in done.stdout
    project.wait_for(lambda: not project.pid_alive(pid), 1.5, interval=0.02, what=f"job child {pid} to die")
    took = time.monotonic() - asked

    job = project.wait_status(job_id, JobState.CANCELLED, timeout=10)
    assert job.attempts == 1, took
    assert project.outcomes(job_id) == ["cancelled"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert f"Job cancelled: {job_id}" in project.log_text()

    # a rerun would now complete at once; the worker goes on with other work and never reruns it
    project.touch("hold")
    other = project.enqueue("record", 1)
    project.wait_status(other, JobState.COMPLETED, timeout=30)
    job = project.job(job_id)
    assert (job.status, job.attempts) == (JobState.CANCELLED, 1)
    assert len(project.pids("hold.started")) == 1
    assert project.read("hold.done") == ""
    assert worker.popen.poll() is None


def test_cancelling_a_prefetched_job_drops_it_before_it_runs(project: Project) -> None:
    holder = project.enqueue("wait_for_file", "hold", priority=10)
    waiting = project.enqueue("record", 1, priority=1)
    project.start_worker("--concurrency", "1", "--prefetch", "1")
    project.wait_file("hold.started")
    # claimed with the holder (prefetch 1) and buffered: running in the database, but not started
    project.wait_for(lambda: project.job(waiting).status is JobState.RUNNING, 10, what="the prefetch claim")

    assert project.cli("jobs", "cancel", str(waiting)).returncode == 0
    job = project.wait_status(waiting, JobState.CANCELLED, timeout=10)
    assert project.outcomes(waiting) == ["cancelled"]
    assert job.attempts == 1
    assert project.job(holder).status is JobState.RUNNING  # the running one is untouched

    project.touch("hold")
    project.wait_status(holder, JobState.COMPLETED, timeout=30)
    assert project.records() == []


@pytest.mark.backends("sqlite")
def test_timeout_counts_from_the_start_of_the_job_not_the_boot_of_its_child(project: Project) -> None:
    # Every child takes 2 s to boot (a loaded machine, a heavy import); the job itself takes no time. Until
    # the executor started a job's clock at the child's "ready", this job was killed before it began.
    project.start_worker("--concurrency", "1", **project.slow_child_boot(2.0))
    job_id = project.enqueue("record", 1, timeout=1, max_attempts=1)
    job = project.wait_status(job_id, JobState.COMPLETED, JobState.FAILED, timeout=30)
    assert (job.status, job.error_type) == (JobState.COMPLETED, None)
