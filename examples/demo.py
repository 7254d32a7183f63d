"""`make run`: migrate the SQLite default, make sure a demo admin can log in, start the HTTP API (`errands serve`)
and a worker, send the Laravel runner's examples through the queue and through `errands run-job`, show the jobs
they left, print the URL and the login, then keep the server and the worker running until Ctrl-C."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from errands import JobState, connect

ROOT = Path(__file__).resolve().parent.parent
ERRANDS = [sys.executable, "-m", "errands"]
DEMO_USER = "admin"
HOST = os.environ.get("ERRANDS_DEMO_HOST", "127.0.0.1")
PORT = int(os.environ.get("ERRANDS_DEMO_PORT", "8000"))
URL = f"http://{HOST}:{PORT}"


def errands(*args: str, env: dict[str, str], stdin: str | None = None) -> int:
    print(f"\n$ errands {' '.join(args)}", flush=True)
    return subprocess.run([*ERRANDS, *args], cwd=ROOT, env=env, input=stdin, text=True).returncode


def demo_admin(env: dict[str, str]) -> str:
    """A fresh install has no password: the demo admin gets a generated one, new at every `make run`."""
    password = secrets.token_urlsafe(12)
    listed = subprocess.run([*ERRANDS, "users", "list", "--json"], cwd=ROOT, env=env, capture_output=True, text=True)
    exists = listed.returncode == 0 and any(user["name"] == DEMO_USER for user in json.loads(listed.stdout or "[]"))
    command = ["users", "passwd", DEMO_USER] if exists else ["users", "create", DEMO_USER, "--role", "admin"]
    if errands(*command, "--password-stdin", env=env, stdin=password + "\n") != 0:
        raise SystemExit(f"could not set the password of the demo user {DEMO_USER!r}")
    return password


def wait_until_serving(server: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"errands serve exited with {server.returncode} (is port {PORT} taken? ERRANDS_DEMO_PORT)")
        try:
            with urllib.request.urlopen(f"{URL}/api/openapi.json", timeout=1):
                return
        except OSError:
            time.sleep(0.2)  # the server is starting: ask again a few times a second
    raise SystemExit(f"errands serve did not answer at {URL} within {timeout_s:.0f} s")


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


def send_examples(env: dict[str, str]) -> None:
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


def banner(password: str) -> None:
    login = json.dumps({"username": DEMO_USER, "password": password})
    command = Path(sys.executable).with_name("errands")
    shown = command.relative_to(ROOT) if command.is_relative_to(ROOT) else command
    print(
        f"""
================================================================================
 errands API:  {URL}/api/docs   (OpenAPI: {URL}/api/openapi.json)
 login:        user {DEMO_USER!r}   password {password!r}   (new at every `make run`)

   curl -s -c cookies.txt -H 'Content-Type: application/json' \\
        -d '{login}' {URL}/api/auth/login
   TOKEN=$({shown} tokens create {DEMO_USER} --scope operate)
   curl -s -H "Authorization: Bearer $TOKEN" {URL}/api/jobs
 Logs: logs/background_jobs.log and logs/background_jobs_errors.log
 The server and the worker keep running; Ctrl-C stops both.
================================================================================""",
        flush=True,
    )


def stop(processes: list[subprocess.Popen[bytes]], *, interrupted: bool) -> None:
    """Ctrl-C in a terminal reached the server and the worker too (one process group): give them time to stop
    as they do on SIGINT; otherwise (or if they don't) ask with SIGTERM, then kill."""
    if interrupted:
        _wait(processes, 20)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    _wait(processes, 20)
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _wait(processes: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def main() -> None:
    os.chdir(ROOT)
    env = {**os.environ, "SAMPLE_JOB_SECONDS": os.environ.get("SAMPLE_JOB_SECONDS", "1"), "JOB_RETRY_DELAY": "1"}
    errands("migrate", env=env)
    password = demo_admin(env)
    print(f"\n$ errands serve --host {HOST} --port {PORT}   (in the background)", flush=True)
    server = subprocess.Popen([*ERRANDS, "serve", "--host", HOST, "--port", str(PORT)], cwd=ROOT, env=env)
    print("\n$ errands worker --concurrency 2   (in the background)", flush=True)
    worker = subprocess.Popen([*ERRANDS, "worker", "--concurrency", "2"], cwd=ROOT, env=env)
    processes = [server, worker]
    interrupted = False
    try:
        wait_until_serving(server)
        send_examples(env)
        banner(password)
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)  # until Ctrl-C, or until one of them stops by itself
        print("a background process stopped: stopping the other", file=sys.stderr)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        stop(processes, interrupted=interrupted)


if __name__ == "__main__":
    main()
