"""Claim order (priority DESC, scheduled_at, id) and scheduled jobs, seen through a real worker process."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from errands.jobs import JobState

if TYPE_CHECKING:
    from conftest import Project


@pytest.mark.parametrize("prefetch", ["0", None], ids=["prefetch0", "prefetch-default"])
def test_one_worker_runs_jobs_by_priority_then_scheduled_at_then_id(project: Project, prefetch: str | None) -> None:
    base = project.store.now() - timedelta(minutes=5)
    # (priority, seconds after base or None for "now"); ties on both are broken by id
    plan = [
        (1, 10),
        (5, 20),
        (5, 5),
        (1, 1),
        (3, 30),
        (5, 5),  # the same priority and time as the third: id decides
        (1, 1),
        (-2, None),
        (3, 30),
        (9, None),  # scheduled now, but the highest priority
        (3, 2),
    ]
    ids = []
    for i, (priority, offset) in enumerate(plan):
        at = None if offset is None else base + timedelta(seconds=offset)
        ids.append(project.enqueue("record", i, priority=priority, at=at))
    jobs = {project.job(job_id).id: (i, project.job(job_id)) for i, job_id in enumerate(ids)}
    expected = [i for i, job in sorted(jobs.values(), key=lambda p: (-p[1].priority, p[1].scheduled_at, p[1].id))]
    assert expected != list(range(len(plan)))  # the order is not simply the insertion order

    args = ["--burst", "--concurrency", "1"] + (["--prefetch", prefetch] if prefetch is not None else [])
    worker = project.start_worker(*args)
    assert worker.wait(60) == 0, worker.output()

    assert [i for i, _ in project.records()] == expected
    assert all(project.job(job_id).status is JobState.COMPLETED for job_id in ids)


def test_delayed_job_waits_for_its_scheduled_time_then_runs(project: Project) -> None:
    worker = project.start_worker("--concurrency", "1")
    project.wait_registered(worker)
    done = project.cli("enqueue", "wjobs:record", "-", "--args-json", "[1]", "--delay", "2")
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())

    job = project.wait_status(job_id, JobState.COMPLETED, timeout=30)
    [attempt] = project.attempts(job_id)
    assert attempt.started_at >= job.scheduled_at
    assert job.scheduled_at - job.created_at >= timedelta(seconds=2)
    assert project.record_counts() == {1: 1}


def test_job_enqueued_at_a_time_runs_at_that_time(project: Project) -> None:
    worker = project.start_worker("--concurrency", "1")
    project.wait_registered(worker)
    at = project.store.now() + timedelta(seconds=3)
    done = project.cli("enqueue", "wjobs:record", "-", "--args-json", "[7]", "--at", at.isoformat() + "Z")
    assert done.returncode == 0, done.stderr
    job_id = int(done.stdout.strip())

    job = project.wait_status(job_id, JobState.COMPLETED, timeout=30)
    assert job.scheduled_at == at
    [attempt] = project.attempts(job_id)
    assert attempt.started_at >= at
    assert project.record_counts() == {7: 1}


@pytest.mark.backends("postgresql")
def test_postgresql_wakes_an_idle_worker_at_once(project: Project) -> None:
    # polling every 30 s and rescuing every 30 s (a rescue pass would wake the loop too): only LISTEN/NOTIFY
    # can bring the job to the worker within a second
    worker = project.start_worker("--concurrency", "1", ERRANDS_POLL_INTERVAL="30", ERRANDS_RESCUE_INTERVAL="30")
    project.wait_registered(worker)
    warm = project.enqueue("noop")  # by the time it completes, the worker listens and its child is ready
    project.wait_status(warm, JobState.COMPLETED, timeout=30)

    enqueued = time.monotonic()
    job_id = project.enqueue("record", 1)
    project.wait_for(lambda: project.records(), 20, interval=0.01, what="the job to run")
    took = time.monotonic() - enqueued
    # well under the 30 s poll (a loaded machine may take seconds to run it): only a notification explains it
    assert took < 15.0, f"picked up after {took:.2f}s"
    project.wait_status(job_id, JobState.COMPLETED, timeout=10)
    assert worker.popen.poll() is None
