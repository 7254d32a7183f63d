"""Crashes: a worker killed with SIGKILL, a job that kills its own process, and the lease that fences both."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from errands.jobs import AttemptOutcome, JobState
from errands.store import Outcome

if TYPE_CHECKING:
    from conftest import Project


def test_killed_worker_job_is_rescued_rerun_and_the_old_token_is_fenced(project: Project) -> None:
    job_id = project.enqueue("wait_for_file", "hold")
    a = project.start_worker("--concurrency", "1")
    [child_a] = project.wait_file("hold.started")
    running = project.job(job_id)
    assert running.status is JobState.RUNNING and running.lease is not None
    old_token = running.lease.token

    a.kill_group()
    assert a.wait(10) == -signal.SIGKILL
    # The job's child is in a session of its own: the group kill doesn't reach it, it notices its parent's
    # death within a moment (the test below). Take it down at once, as the loss of the whole machine would.
    if project.pid_alive(child_a):
        os.kill(child_a, signal.SIGKILL)

    b = project.start_worker("--concurrency", "1")
    # B (its rescuer, once A's lease and A's rescuer lock have expired) returns the job and runs it again
    [_, child_b] = project.wait_file("hold.started", lines=2, timeout=40)
    assert child_b != child_a
    rerun = project.job(job_id)
    assert rerun.status is JobState.RUNNING and rerun.lease is not None
    assert rerun.attempts == 2 and rerun.lease.token != old_token

    # A's late report, with the token A held: fenced off, nothing written
    stale = Outcome(job_id, old_token, 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="stale")
    [finished] = project.store.jobs_finish([stale])
    assert finished.recorded is False
    after = project.job(job_id)
    # all as it was (but the lease's expiry, which B's heartbeat keeps pushing on)
    assert after.lease is not None and (after.lease.owner, after.lease.token) == (rerun.lease.owner, rerun.lease.token)
    assert replace(after, lease=None) == replace(rerun, lease=None)
    assert project.outcomes(job_id) == ["lost", None]

    project.touch("hold")
    job = project.wait_status(job_id, JobState.COMPLETED, timeout=30)
    assert job.result == "hold"
    attempts = project.attempts(job_id)
    assert [a.outcome for a in attempts] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]
    assert attempts[0].error_type == "WorkerLost"
    assert attempts[0].worker != attempts[1].worker
    assert attempts[0].worker is not None and attempts[0].worker.endswith(f":{a.pid}")
    assert attempts[1].worker is not None and attempts[1].worker.endswith(f":{b.pid}")

    # and once finished, the stale token still changes nothing
    [finished] = project.store.jobs_finish([stale])
    assert finished.recorded is False
    assert project.job(job_id) == job
    assert f"Job {job_id} attempt 1 lost (lease expired): back to pending" in project.log_text()


def test_a_worker_stops_a_running_job_whose_lease_was_taken_back(project: Project) -> None:
    job_id = project.enqueue("wait_for_file", "hold")
    worker = project.start_worker("--concurrency", "1")
    [child] = project.wait_file("hold.started")

    # A rescuer elsewhere whose clock is past the lease takes the job back (failed: a crash budget of 1, so
    # nobody claims it again). The worker's next renewal doesn't find the lease: the job must stop now, not
    # run on (here until the file appears) beside the attempt another worker may be running.
    later = project.store.now() + timedelta(seconds=60)
    assert [(r.job_id, r.failed) for r in project.store.jobs_rescue_expired(1, now=later)] == [(job_id, True)]
    project.wait_for(lambda: not project.pid_alive(child), 15, what=f"the job's process {child} to be stopped")

    said = f"Job {job_id}: its lease was lost (taken back by a rescuer): stopping it"
    project.wait_for(lambda: said in project.read("logs/errors.log"), 10, what="the error log to say so")
    assert not (project.dir / "hold.done").exists()
    assert project.outcomes(job_id) == ["lost"]  # the rescuer's record stands: the worker wrote nothing
    assert project.job(job_id).status is JobState.FAILED
    other = project.enqueue("record", 1)  # and the worker goes on
    project.wait_status(other, JobState.COMPLETED, timeout=30)
    assert worker.popen.poll() is None


@pytest.mark.backends("sqlite")
def test_a_killed_workers_child_does_not_outlive_it(project: Project) -> None:
    project.enqueue("wait_for_file", "hold")
    worker = project.start_worker("--concurrency", "1")
    [child] = project.wait_file("hold.started")
    worker.kill_group()
    worker.wait(10)
    project.wait_for(lambda: not project.pid_alive(child), 10, what=f"the orphaned child {child} to stop")


def test_job_that_kills_its_own_process_fails_after_the_crash_budget(project: Project) -> None:
    job_id = project.enqueue("kill_self", max_attempts=5)
    worker = project.start_worker("--concurrency", "1", ERRANDS_CRASH_BUDGET="2")

    job = project.wait_status(job_id, JobState.FAILED, timeout=60)
    assert job.error_type == "WorkerLost"
    assert job.lost_attempts == 2
    # On a loaded machine the replacement child may start after the job's start-by moment: the job comes back
    # unstarted, and if its lease can't be vouched for then, it is released (not charged) and claimed again.
    outcomes = project.outcomes(job_id)
    assert [o for o in outcomes if o != "released"] == ["lost", "lost"]
    assert job.attempts == len(outcomes)
    assert len(project.pids("crash.pids")) == 2  # it really ran twice, and no more
    assert worker.popen.poll() is None  # the worker survives its children's deaths

    # the worker still runs other jobs (its pool replaced the dead children)
    other = project.enqueue("record", 1)
    project.wait_status(other, JobState.COMPLETED, timeout=30)
    assert len(project.pids("crash.pids")) == 2


def test_long_job_on_a_healthy_worker_is_never_rescued(project: Project) -> None:
    # 3 x lease_timeout (2 s), while another worker's rescuer runs every 0.5 s on the same database
    idle = project.start_worker("--concurrency", "1")
    project.wait_registered(idle)
    busy = project.start_worker("--concurrency", "1")
    project.wait_registered(busy)
    job_id = project.enqueue("record_and_sleep", 1, 6.5)

    job = project.wait_status(job_id, JobState.COMPLETED, timeout=60)
    assert job.attempts == 1
    assert project.outcomes(job_id) == ["completed"]
    assert job.started_at is not None and job.finished_at is not None
    assert (job.finished_at - job.started_at).total_seconds() >= 6
    assert project.record_counts() == {1: 1}
    assert "lost" not in project.log_text()
    assert idle.popen.poll() is None and busy.popen.poll() is None
