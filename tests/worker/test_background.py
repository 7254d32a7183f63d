"""run_background_job() and `errands run-job --background`: a detached process that outlives its caller."""

from __future__ import annotations

import gc
import json
import os
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from errands.jobs import JobState
from errands.spawn import run_background_job

if TYPE_CHECKING:
    from conftest import Proc, Project

# A caller that dispatches one job, prints its id, then waits to be killed. With DETACHED_LEASE set, the
# detached process (which inherits the caller's environment) runs under that lease_timeout instead.
CALLER = """
import json, os, sys, time
from errands.client import Client
from errands.settings import load_settings
from errands.spawn import run_background_job
from errands.store import open_store

settings = load_settings()
if os.environ.get("DETACHED_LEASE"):
    os.environ["ERRANDS_LEASE_TIMEOUT"] = os.environ["DETACHED_LEASE"]
client = Client(settings, open_store(settings.database_url))
job_id = run_background_job(client, "wjobs:" + sys.argv[1], "", json.loads(sys.argv[2]))
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
    # The reservation lasts the caller's lease_timeout (10 s here: a detached process may take seconds to
    # start on a loaded machine); the detached process then holds the job under a 2 s lease, renewed by its
    # heartbeat, for a job of 5 s, while a worker (lease 2 s) polls every 0.1 s and rescues every 0.5 s.
    worker = project.start_worker("--concurrency", "2")
    project.wait_registered(worker)

    caller, job_id = _caller(project, "record_and_sleep", [1, 5.0], ERRANDS_LEASE_TIMEOUT="10", DETACHED_LEASE="2")
    running = project.wait_status(job_id, JobState.RUNNING, timeout=30)
    assert running.lease is not None
    # held under the detached process's 2 s lease (renewed to now + 2 s), not the 10 s reservation
    assert running.lease.expires_at - project.store.now() <= timedelta(seconds=2.5)

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
    monkeypatch.setenv("ERRANDS_DATABASE_URL", project.db_url)  # the detached processes inherit it
    first = run_background_job(project.main, "wjobs:sleep", "", [1.0])
    [detached] = _detached_children()
    gc.collect()  # before the fix: "ResourceWarning: subprocess N is still running", an error in this suite
    project.wait_status(first, JobState.COMPLETED, timeout=60)
    project.wait_for(lambda: not project.pid_alive(detached), 30, what="the detached process to end")

    second = run_background_job(project.main, "wjobs:record", "", [2])
    assert detached not in _detached_children()  # reaped, not left a zombie
    project.wait_status(second, JobState.COMPLETED, timeout=60)
    assert project.record_counts() == {2: 1}
