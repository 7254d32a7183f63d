"""Graceful shutdown (SIGTERM drains, the grace, a second signal) and the worker registry (`errands workers`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

from errands.jobs import AttemptOutcome, JobState
from errands.logs import JobLog
from errands.worker.loop import Worker, WorkerOptions

if TYPE_CHECKING:
    from conftest import Proc, Project


def _workers_json(project: Project) -> list[dict[str, Any]]:
    done = project.cli("workers", "--json")
    assert done.returncode == 0, done.stderr
    listed: list[dict[str, Any]] = json.loads(done.stdout)
    return listed


def _stopped(worker: Proc, timeout: float = 30) -> int:
    code = worker.wait(timeout)
    return code


def test_sigterm_stops_claiming_and_lets_the_running_job_finish(project: Project) -> None:
    first = project.enqueue("record_and_sleep", 1, 2.0, priority=10)
    others = [project.enqueue("record", i, priority=1) for i in (2, 3)]
    worker = project.start_worker("--concurrency", "1", "--prefetch", "0", "--grace", "20")
    project.wait_for(lambda: project.records(), 30, what="the first job to start")

    worker.signal(signal.SIGTERM)
    assert _stopped(worker) == 0, worker.output()

    job = project.job(first)
    assert job.status is JobState.COMPLETED  # it ran to its end within the grace
    assert project.outcomes(first) == ["completed"]
    assert job.finished_at is not None and job.started_at is not None
    assert (job.finished_at - job.started_at).total_seconds() >= 2
    for job_id in others:  # a worker that went on claiming would have run these next
        other = project.job(job_id)
        assert (other.status, other.attempts, other.lease) == (JobState.PENDING, 0, None)
    assert [i for i, _ in project.records()] == [1]
    assert project.store.workers_list(alive_within_s=3600) == []
    assert "stopped" in project.log_text().splitlines()[-1]


def test_sigterm_after_the_grace_releases_running_and_prefetched_jobs(project: Project) -> None:
    running = project.enqueue("wait_for_file", "hold", priority=10, max_attempts=3)
    buffered = project.enqueue("record", 2, priority=1, max_attempts=3)
    worker = project.start_worker("--concurrency", "1", "--prefetch", "1", "--grace", "0.5")
    [child] = project.wait_file("hold.started")
    project.wait_for(lambda: project.job(buffered).status is JobState.RUNNING, 10, what="the prefetch claim")

    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert _stopped(worker) == 0, worker.output()
    assert time.monotonic() - signalled < 15  # grace 0.5 s, then SIGTERM to the child (it obeys)
    assert not project.pid_alive(child)

    for job_id in (running, buffered):
        job = project.job(job_id)
        assert (job.status, job.attempts, job.lease) == (JobState.PENDING, 1, None)
        assert project.outcomes(job_id) == ["released"]
        assert job.max_attempts == 4  # a released attempt doesn't spend the budget
        assert job.budget == 3
    assert project.records() == []
    assert project.read("hold.done") == ""

    # they run again, as fresh as before
    project.touch("hold")
    again = project.start_worker("--burst", "--concurrency", "1")
    assert _stopped(again, 60) == 0, again.output()
    for job_id in (running, buffered):
        assert project.job(job_id).status is JobState.COMPLETED
        assert [a.outcome for a in project.attempts(job_id)] == [AttemptOutcome.RELEASED, AttemptOutcome.COMPLETED]
    assert project.record_counts() == {2: 1}


def test_a_second_signal_skips_the_rest_of_the_grace(project: Project) -> None:
    job_id = project.enqueue("wait_for_file", "hold")
    worker = project.start_worker("--concurrency", "1", "--grace", "600")
    project.wait_file("hold.started")

    # SIGTERM then SIGINT (an operator's Ctrl-C after a kill): two distinct signals, which the kernel and
    # Python never fold into one as they may two SIGTERMs sent back to back
    signalled = time.monotonic()
    worker.signal(signal.SIGTERM)
    worker.signal(signal.SIGINT)
    assert _stopped(worker) == 0, worker.output()
    assert time.monotonic() - signalled < 15  # not the 600 s grace
    assert project.outcomes(job_id) == ["released"]
    job = project.job(job_id)
    assert (job.status, job.lease) == (JobState.PENDING, None)


def test_workers_lists_a_running_worker_until_it_stops(project: Project) -> None:
    assert _workers_json(project) == []
    worker = project.start_worker("--queue", "mail", "--queue", "reports", "--concurrency", "3")
    project.wait_registered(worker)

    [listed] = _workers_json(project)
    assert listed["pid"] == worker.pid
    assert listed["host"] == socket.gethostname()
    assert listed["queues"] == ["mail", "reports"]
    assert listed["concurrency"] == 3
    assert listed["id"].startswith("worker:")
    assert listed["started_at"] and listed["heartbeat_at"]

    worker.signal(signal.SIGTERM)
    assert _stopped(worker) == 0, worker.output()
    assert _workers_json(project) == []


def test_workers_drops_a_killed_worker_once_its_heartbeat_is_stale(project: Project) -> None:
    worker = project.start_worker("--concurrency", "1")
    project.wait_registered(worker)
    assert [w["pid"] for w in _workers_json(project)] == [worker.pid]

    worker.kill_group()
    worker.wait(10)
    # its row stays (nobody deregistered it), but `workers` shows only heartbeats within lease_timeout (2 s)
    project.wait_for(lambda: not project.store.workers_list(alive_within_s=2), 10, what="a stale heartbeat")
    assert _workers_json(project) == []


@pytest.mark.backends("sqlite")
def test_a_signal_after_shutdown_writes_nothing_into_reused_descriptors(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process: a burst worker with nothing to do runs and shuts down (its pool's wake-up pipe closed).
    monkeypatch.chdir(project.dir)
    settings = project.settings()
    log = JobLog(settings.log_file, settings.error_log_file)
    worker = Worker(project.store, settings, log, WorkerOptions(concurrency=1, burst=True))
    try:
        assert worker.run() == 0
        wake_w = worker.pool._mux._wake_w  # type: ignore[attr-defined]
        # something else of the process's now has the number the pool's wake-up pipe had: here, a new pipe
        read_end, write_end = os.pipe()
        os.dup2(write_end, wake_w)
        try:
            os.set_blocking(read_end, False)
            worker.request_stop()  # a late SIGTERM, a second Ctrl-C
            with pytest.raises(BlockingIOError):  # before the fix: the pool's "!" landed in this pipe
                os.read(read_end, 10)
        finally:
            for fd in (read_end, write_end, wake_w):
                os.close(fd)
    finally:
        log.close()
