"""The worker in this process, one step at a time: run_once(now=...) steps the clock its duties go by (lease
lapses, cancel checks, rescues), and beat() stands in for the heartbeat's thread, so nothing here waits for a
lease to run out. The jobs run in real child processes against the real database; the database's leases are
long (a minute), so only the stepped clock makes them lapse."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from errands.jobs import JobState, NewJob
from errands.logs import JobLog
from errands.store import Claim
from errands.worker.loop import CANCEL_CHECK_S, Worker, WorkerOptions

if TYPE_CHECKING:
    from conftest import Project

LEASE_S = 60.0


class Stepper:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.now = time.monotonic()

    def until(self, done: Callable[[], Any], what: str, timeout: float = 30) -> None:
        """Step (at the current `now`) until `done()` holds; the children run meanwhile, in real time."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
            self.worker.run_once(now=self.now)

    def later(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def stepped(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stepper]]:
    monkeypatch.chdir(project.dir)  # the pool's children import the jobs from their working directory
    started: list[tuple[Worker, JobLog]] = []

    def start(settings_overrides: dict[str, Any] | None = None, **options: Any) -> Stepper:
        settings = project.settings(lease_timeout=LEASE_S, rescue_interval=LEASE_S / 2, **(settings_overrides or {}))
        log = JobLog(settings.log_file, settings.error_log_file)
        worker = Worker(project.store, settings, log, WorkerOptions(**options))
        started.append((worker, log))
        worker.start(heartbeat=False)
        return Stepper(worker)

    yield start
    for worker, log in started:
        worker.shutdown()
        log.close()


def test_buffered_jobs_whose_leases_lapsed_are_released_not_started(project: Project, stepped: Any) -> None:
    blocker = project.enqueue("wait_for_file", "go")
    queued = [project.enqueue("record", i) for i in range(3)]
    step: Stepper = stepped(concurrency=1, prefetch=3)
    step.until(lambda: len(step.worker.buffer) == 3 and project.read("go.started"), "the blocker to run, 3 buffered")

    step.later(LEASE_S + 1)  # the worker fell a lease behind: its buffered jobs may have been rescued meanwhile
    project.touch("go")
    step.until(lambda: all(project.job(i).status is JobState.COMPLETED for i in [blocker, *queued]), "all done")

    assert "its lease may have lapsed before it started" in project.log_text()
    assert project.record_counts() == {0: 1, 1: 1, 2: 1}
    for job_id in queued:  # released unstarted (not charged), claimed again under a fresh lease, run once
        assert project.outcomes(job_id) == ["released", "completed"]


def test_a_running_job_whose_lease_a_renewal_did_not_find_is_stopped(project: Project, stepped: Any) -> None:
    job_id = project.enqueue("wait_for_file", "hold")
    step: Stepper = stepped(concurrency=1)
    step.until(lambda: project.read("hold.started"), "the job to start")
    [child] = project.pids("hold.started")

    later = project.store.now() + timedelta(seconds=2 * LEASE_S)  # a rescuer elsewhere, its clock past the lease
    assert [r.job_id for r in project.store.jobs_rescue_expired(1, now=later)] == [job_id]
    step.worker.beat(now=step.now)  # the renewal doesn't find the lease
    step.until(lambda: not project.pid_alive(child) and not step.worker.held, "the job's process to be stopped")

    assert "its lease was lost (taken back by a rescuer): stopping it" in project.read("logs/errors.log")
    assert project.outcomes(job_id) == ["lost"]  # nothing written over the rescuer's record


def test_a_cancel_request_is_checked_when_its_time_comes(project: Project, stepped: Any) -> None:
    job_id = project.enqueue("wait_for_file", "hold")
    step: Stepper = stepped(concurrency=1)
    step.until(lambda: project.read("hold.started"), "the job to start")

    project.store.job_cancel(job_id)  # running: a request its worker acts on (PostgreSQL also notifies it)
    step.later(CANCEL_CHECK_S)
    step.until(lambda: project.job(job_id).status is JobState.CANCELLED, "the job to be cancelled")
    assert project.outcomes(job_id) == ["cancelled"]
    assert not (project.dir / "hold.done").exists()


def test_the_rescue_duty_returns_a_dead_workers_job_when_its_time_comes(project: Project, stepped: Any) -> None:
    step: Stepper = stepped(concurrency=1)
    step.worker.run_once(now=step.now)  # the first step rescues (nothing to do yet)
    t0 = project.store.now() - timedelta(seconds=2 * LEASE_S)
    job_id = project.store.job_insert(NewJob("wjobs:record", "", args=(1,)), now=t0)
    [job] = project.store.jobs_claim(Claim("dead", "dead-token", 2.0, "host:1"), 1, now=t0)  # long expired
    assert job.id == job_id

    step.worker.run_once(now=step.now)  # not yet time for the next rescue
    assert project.job(job_id).status is JobState.RUNNING
    step.later(LEASE_S / 2)
    step.until(lambda: project.job(job_id).status is JobState.COMPLETED, "the job rescued and run")
    assert project.outcomes(job_id) == ["lost", "completed"]


@pytest.mark.backends("mariadb")  # where nothing announces new jobs (elsewhere a listener wakes the worker)
def test_a_worker_that_just_found_jobs_polls_again_soon(project: Project, stepped: Any) -> None:
    """An idle worker's step waits before its next claim: soon after it found jobs (more tend to follow), a
    little longer after each empty claim, up to the poll interval (here 10 s)."""
    step: Stepper = stepped({"poll_interval": 10.0}, concurrency=1)
    first = project.enqueue("record", 0)
    step.until(lambda: project.job(first).status is JobState.COMPLETED, "the first job, recorded")
    for _ in range(5):  # idle: these claims come back empty
        step.worker.run_once(now=step.now)

    began = time.monotonic()
    step.worker.run_once(now=step.now)
    took = time.monotonic() - began
    assert took < 5.0, f"an idle step after finding jobs waited {took:.2f}s"  # ~0.12 s; a whole poll: 10 s
