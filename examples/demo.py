"""`make run`: migrate the SQLite default, start a worker, send the Laravel runner's examples through the queue and
through `errands run-job`, show the jobs they left, then keep the worker running until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from errands import JobState, connect

ROOT = Path(__file__).resolve().parent.parent
ERRANDS = [sys.executable, "-m", "errands"]


def errands(*args: str, env: dict[str, str]) -> int:
    print(f"\n$ errands {' '.join(args)}", flush=True)
    return subprocess.run([*ERRANDS, *args], cwd=ROOT, env=env).returncode


def wait_until_settled(job_ids: list[int], timeout_s: float = 60) -> None:
    client = connect()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            statuses = [client.get(job_id).status for job_id in job_ids]
            follow_ups = [f for job_id in job_ids for f in client.follow_ups(job_id)]
            pending = [s for s in statuses if s in (JobState.PENDING, JobState.RUNNING)]
            pending += [f for f in follow_ups if client.get(f).status in (JobState.PENDING, JobState.RUNNING)]
            if not pending:
                return
            time.sleep(0.2)  # a person is watching: poll the real state a few times a second
    finally:
        client.close()


def main() -> None:
    os.chdir(ROOT)
    env = {**os.environ, "SAMPLE_JOB_SECONDS": os.environ.get("SAMPLE_JOB_SECONDS", "1"), "JOB_RETRY_DELAY": "1"}
    errands("migrate", env=env)
    print("\n$ errands worker --concurrency 2   (in the background)", flush=True)
    worker = subprocess.Popen([*ERRANDS, "worker", "--concurrency", "2"], cwd=ROOT, env=env)
    try:
        ids = []
        for args in (
            ["examples.jobs.SampleJob", "process", "test1,test2", "4"],
            ["examples.jobs.FailingJob", "process", "a,b"],
        ):
            print(f"\n$ errands enqueue {' '.join(args)}", flush=True)
            out = subprocess.run([*ERRANDS, "enqueue", *args], cwd=ROOT, env=env, capture_output=True, text=True)
            print(out.stdout.strip() or out.stderr.strip())
            if out.returncode == 0:
                ids.append(int(out.stdout))
        errands("run-job", "examples.jobs.SampleJob", "process", "now1,now2", env=env)
        errands("run-job", "os", "system", "echo pwned", env=env)
        wait_until_settled(ids)
        errands("jobs", "list", "--limit", "10", env=env)
        print("\nLogs: logs/background_jobs.log and logs/background_jobs_errors.log")
        print("The worker keeps running: `errands enqueue ...` in another terminal; Ctrl-C stops it.", flush=True)
        worker.wait()
    except KeyboardInterrupt:
        worker.send_signal(signal.SIGINT)
        worker.wait()


if __name__ == "__main__":
    main()
