"""`make run`: the seed's examples through `errands run-job`, then the jobs they left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERRANDS = [sys.executable, "-m", "errands"]


def run(*args: str, env: dict[str, str] | None = None) -> int:
    print(f"\n$ errands {' '.join(args)}", flush=True)
    return subprocess.run([*ERRANDS, *args], cwd=ROOT, env=env).returncode


def main() -> None:
    env = {**os.environ, "SAMPLE_JOB_SECONDS": os.environ.get("SAMPLE_JOB_SECONDS", "1")}
    fast_retries = {**env, "JOB_RETRY_DELAY": "0"}
    run("migrate")
    run("run-job", "examples.jobs.SampleJob", "process", "test1,test2", "4", env=env)
    run("run-job", "examples.jobs.FailingJob", "process", "a,b", env=fast_retries)
    run("run-job", "os", "system", "echo pwned")
    run("jobs", "list", "--limit", "10")
    print("\nLogs: logs/background_jobs.log and logs/background_jobs_errors.log")


if __name__ == "__main__":
    main()
