"""run_background_job() and `errands run-job --background`: a detached process that outlives its caller."""

from __future__ import annotations

import gc
import json
import os
import re
import signal
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import errands
from errands.jobs import JobState, Lease
from errands.worker.oneshot import CHILD_BOOT_S

if TYPE_CHECKING:
    from conftest import Proc, Project

# A caller that dispatches one job, prints its id, then waits to be killed.
CALLER = """
import json, sys, time
import errands

job_id = errands.connect().run_background_job("wjobs:" + sys.argv[1], "", json.loads(sys.argv[2]))
print(job_id, flush=True)
time.sleep(600)
"""


def _caller(project: Project, job: str, args: list[object], **env: str) -> tuple[Proc, int]:
    caller = project.spawn([sys.executable, "-c", CALLER, job, json.dumps(args)], "caller", project.env(**env))
    job_id = int(caller.read_line(60).strip())
    return caller, job_id


def test_job_completes_after_its_caller_is_killed(project: Project) -> None:
    caller, job_id = _caller(project, "record_and_sleep", [1, 1.0])
    caller.kill_group()  # the caller's whole process group, at once
    caller.wait(10)

    job = project.wait_status(job_id, JobState.COMPLETED, JobState.FAILED, timeout=60)
    assert job.status is JobState.COMPLETED
    assert job.result == 1
    [(i, pid)] = project.records()
    assert i == 1 and pid != caller.pid
    [attempt] = project.attempts(job_id)
    assert attempt.outcome is not None and attempt.outcome.value == "completed"
    assert attempt.worker is not None and not attempt.worker.endswith(f":{caller.pid}")
    assert f"Job {job_id} dispatched to a detached process" in project.log_text()


def test_cli_run_job_background_returns_at_once_and_the_job_completes(project: Project) -> None:
    done = project.cli("run-job", "wjobs:record", "-", "--args-json", "[3]", "--background")
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"Job (\d+) started in the background\n", done.stdout)
    assert match, done.stdout
    job_id = int(match.group(1))

    project.wait_status(job_id, JobState.COMPLETED, timeout=60)
    assert project.record_counts() == {3: 1}
    assert len(project.attempts(job_id)) == 1


def test_dispatch_queue_only_enqueues_and_a_worker_runs_it(project: Project) -> None:
    caller, job_id = _caller(project, "record", [2], ERRANDS_DISPATCH="queue")
    assert project.children_of(caller.pid) == []  # no detached process was started
    caller.kill_group()
    caller.wait(10)

    job = project.job(job_id)
    assert (job.status, job.attempts, job.lease) == (JobState.PENDING, 0, None)  # not reserved to anyone
    assert project.records() == []
    assert "dispatched" not in project.log_text()

    worker = project.start_worker("--burst", "--concurrency", "1")
    assert worker.wait(60) == 0, worker.output()
    job = project.job(job_id)
    assert (job.status, job.attempts) == (JobState.COMPLETED, 1)
    [attempt] = project.attempts(job_id)
    assert attempt.worker is not None and attempt.worker.endswith(f":{worker.pid}")
    assert project.record_counts() == {2: 1}


def test_a_running_worker_never_takes_the_detached_process_job(project: Project) -> None:
    # The caller's lease is 10 s (a detached process may take seconds to start on a loaded machine): the job is
    # reserved for that long, then held by the detached process under it, renewed every 0.5 s, while a worker
    # (lease 2 s) polls every 0.1 s and rescues every 0.5 s.
    worker = project.start_worker("--concurrency", "2")
    project.wait_registered(worker)

    caller, job_id = _caller(project, "record_and_sleep", [1, 3.0], ERRANDS_LEASE_TIMEOUT="10")
    lease = project.wait_status(job_id, JobState.RUNNING, timeout=30).lease
    assert lease is not None
    project.wait_for(lambda: _lease_renewed(project, job_id, lease.expires_at), 30, what="a renewal")

    job = project.wait_status(job_id, JobState.COMPLETED, JobState.FAILED, timeout=60)
    assert job.status is JobState.COMPLETED
    assert project.record_counts() == {1: 1}
    [attempt] = project.attempts(job_id)
    assert attempt.worker is not None and not attempt.worker.endswith(f":{worker.pid}")
    assert worker.popen.poll() is None
    assert caller.popen.poll() is None


def _detached_children() -> list[int]:
    """This process's children that are detached job processes, zombies included."""
    found = []
    for pid in Path("/proc").iterdir():
        try:
            stat = (pid / "stat").read_text()
            cmdline = (pid / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"errands.worker.detached" in cmdline:
            found.append(int(pid.name))
    return found


@pytest.mark.backends("sqlite")
def test_run_background_job_in_process_neither_warns_nor_leaves_zombies(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.dir)
    first = project.main.run_background_job("wjobs:sleep", "", [1.0])
    [detached] = _detached_children()
    gc.collect()  # before the fix: "ResourceWarning: subprocess N is still running", an error in this suite
    project.wait_status(first, JobState.COMPLETED, timeout=60)
    project.wait_for(lambda: not project.pid_alive(detached), 30, what="the detached process to end")

    second = project.main.run_background_job("wjobs:record", "", [2])
    assert detached not in _detached_children()  # reaped, not left a zombie
    project.wait_status(second, JobState.COMPLETED, timeout=60)
    assert project.record_counts() == {2: 1}


def _cmdline(pid: int) -> bytes:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes()


def _lease_renewed(project: Project, job_id: int, before: datetime) -> bool:
    lease = project.job(job_id).lease
    return lease is not None and lease.expires_at != before


@pytest.mark.backends("sqlite", "postgresql")
def test_the_detached_process_runs_with_the_settings_of_the_client_that_started_it(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No ERRANDS_DATABASE_URL anywhere: a detached process that loaded its own settings would look for the
    # default database (errands.db in this directory) and never find the job.
    monkeypatch.chdir(project.dir)
    client = errands.connect(project.settings(max_retries=1))
    try:
        job_id = client.run_background_job("wjobs:record", "", [4])
        [detached] = _detached_children()
        assert project.db_url.encode() not in _cmdline(detached)  # the URL may hold a password: not in argv
        job = project.wait_status(job_id, JobState.COMPLETED, timeout=60)
    finally:
        client.close()
    assert (job.attempts, job.max_attempts) == (1, 1)  # max_retries=1 was the client's, not the file's
    assert project.record_counts() == {4: 1}
    assert not (project.dir / "errands.db").exists()


@pytest.mark.backends("sqlite")
def test_a_delayed_background_job_waits_without_a_child_process(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.dir)
    job_id = project.main.run_background_job("wjobs:record", "", [5], delay=15)
    # the detached process is waiting once its heartbeat renewed the reservation (its pool, before the fix,
    # started before the heartbeat)
    detached, _ = _waiting_detached(project, job_id)
    due_in = (project.job(job_id).scheduled_at - project.store.now()).total_seconds()
    assert due_in > CHILD_BOOT_S, "the detached process started too late for this test to tell"
    assert project.children_of(detached) == []

    job = project.wait_status(job_id, JobState.COMPLETED, JobState.FAILED, timeout=60)
    assert job.status is JobState.COMPLETED
    assert project.record_counts() == {5: 1}


def _waiting_detached(project: Project, job_id: int) -> tuple[int, Lease]:
    """The one detached process just started for a delayed job, once its heartbeat renewed the job's
    reservation (it is waiting for the job to be due); and the reservation it started with."""
    [detached] = _detached_children()
    reserved = project.job(job_id).lease
    assert reserved is not None
    project.wait_for(lambda: _lease_renewed(project, job_id, reserved.expires_at), 30, what="a renewal")
    return detached, reserved


def _detached_processes_of(project: Project, job_id: int) -> list[int]:
    """Live detached processes running `job_id`, whoever started them."""
    found = []
    for pid in Path("/proc").iterdir():
        try:
            argv = _cmdline(int(pid.name)).split(b"\0")
        except (OSError, ValueError):
            continue
        if b"errands.worker.detached" in argv and str(job_id).encode() in argv and project.pid_alive(int(pid.name)):
            found.append(int(pid.name))
    return found


def _kill_and_wait_for_expiry(project: Project, detached: int, job_id: int) -> None:
    os.kill(detached, signal.SIGKILL)
    project.wait_for(lambda: not project.pid_alive(detached), 30, what="the detached process to die")
    lease = project.job(job_id).lease
    assert lease is not None
    project.wait_for(lambda: project.store.now() > lease.expires_at, 30, what="the lease to expire")


def test_a_background_job_whose_process_died_gets_a_new_one(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    # No worker runs. The job's detached process is killed mid-job; a later rescue pass (here those of the
    # next background job's detached process, which lives until the test lets it end) must give it a new
    # process, not leave it pending for nobody.
    monkeypatch.chdir(project.dir)
    lost = project.main.run_background_job("wjobs:wait_for_file", "", ["go"])
    [detached] = _detached_children()
    project.wait_file("go.started", timeout=60)
    _kill_and_wait_for_expiry(project, detached, lost)
    project.touch("go")

    other = project.main.run_background_job("wjobs:wait_for_file", "", ["other"])
    job = project.wait_status(lost, JobState.COMPLETED, JobState.FAILED, timeout=60)
    assert job.status is JobState.COMPLETED
    project.touch("other")
    project.wait_status(other, JobState.COMPLETED, timeout=60)
    assert project.outcomes(lost) == ["lost", "completed"]
    assert f"Job {lost}: its detached process was lost; starting a new one" in project.log_text()


@pytest.mark.backends("sqlite", "mariadb")
def test_a_delayed_background_job_whose_process_died_gets_a_new_one(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Killed while it waited for the job to be due: the job is pending under a lapsed reservation, which the
    # new process takes over (reserved again, so no worker that starts meanwhile takes it either).
    monkeypatch.chdir(project.dir)
    waiting = project.main.run_background_job("wjobs:record", "", [7], delay=600)
    detached, reserved = _waiting_detached(project, waiting)
    _kill_and_wait_for_expiry(project, detached, waiting)

    other = project.main.run_background_job("wjobs:wait_for_file", "", ["other"])
    project.wait_for(lambda: _detached_processes_of(project, waiting), 60, what="a new detached process")

    def reserved_again() -> bool:
        # waited for, not read once: the lease is 2 s, and the new process renews it only once it has started
        # (over a second on a loaded machine), so a single read may fall between the handover and the renewal
        job = project.job(waiting)
        assert job.status is JobState.PENDING and job.lease is not None
        return job.lease.owner == reserved.owner and job.lease.expires_at > project.store.now()

    project.wait_for(reserved_again, 30, what="the reservation held again by the new process")
    project.main.cancel(waiting)
    project.touch("other")
    project.wait_status(other, JobState.COMPLETED, timeout=60)
    assert project.records() == []
