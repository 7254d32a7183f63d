"""The exact commands the containers run (the Kubernetes base's and compose's), started here as processes against
PostgreSQL with the ConfigMap's settings, in a working directory laid out as the image's /app: the migration and
the init containers' wait, `errands serve` answering its probes, a worker running a job, both stopping cleanly on
SIGTERM (the worker after its running job finished), and the image's health check script."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from deploy_files import DEPLOY, ROOT, compose, config_env, container, one, render, tool

from errands.client import JobRequest, connect
from errands.jobs import JobState
from errands.settings import Settings

pytestmark = [pytest.mark.backends("postgresql"), pytest.mark.slow]

T = TypeVar("T")
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.sh"
WAIT_FOR_SCHEMA = DEPLOY / "docker" / "wait-for-schema.sh"


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Container:
    """What a container of the image has: the ConfigMap's environment, the Secret's database URL, /app."""

    env: dict[str, str]
    workdir: Path

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            args, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def settings(self) -> Settings:
        return Settings(
            database_url=self.env["ERRANDS_DATABASE_URL"],
            allowed_jobs={"examples.jobs.SampleJob": ["process"], "examples.jobs:add": []},
            log_file=self.workdir / "client.log",
            error_log_file=self.workdir / "client-errors.log",
        )


@pytest.fixture
def box(fresh_db_url: str, tmp_path: Path) -> Container:
    workdir = tmp_path / "app"
    (workdir / "examples").mkdir(parents=True)
    for name in ("__init__.py", "jobs.py"):  # the image copies these two into /app/examples
        shutil.copy(ROOT / "examples" / name, workdir / "examples" / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ERRANDS_", "JOB_"))}
    env.update(config_env(render("base")))
    env.update(
        ERRANDS_DATABASE_URL=fresh_db_url,  # a schema of its own on the shared server: not migrated yet
        # the image's volume for logs is /var/lib/errands/logs; here, the test's own folder
        ERRANDS_LOG_FILE=str(tmp_path / "logs" / "background_jobs.log"),
        ERRANDS_ERROR_LOG_FILE=str(tmp_path / "logs" / "background_jobs_errors.log"),
        PATH=f"{Path(tool('errands')).parent}:{env['PATH']}",
        SAMPLE_JOB_SECONDS="3",
    )
    return Container(env, workdir)


def args(deployment: str, **replace: str) -> list[str]:
    """The container's args in the Kubernetes base, with some options' values replaced (--port, --host)."""
    found = list(container(render("base"), deployment)["args"])
    for option, value in replace.items():
        found[found.index(f"--{option}") + 1] = value
    return found


def test_compose_and_kubernetes_run_the_same_commands() -> None:
    services = compose()["services"]
    assert (
        services["migrate"]["command"]
        == one(render("base"), "Job", "errands-migrate")["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    assert services["web"]["command"][:5] == args("errands-web")[:5]
    assert services["worker"]["command"] == args("errands-worker")


def test_the_init_containers_wait_until_the_migration_ran(box: Container) -> None:
    box.env.update(ERRANDS_WAIT_SECONDS="1", ERRANDS_WAIT_INTERVAL="0.2")
    waited = box.run(str(WAIT_FOR_SCHEMA))
    assert waited.returncode == 1, waited.stderr
    assert "errands migrate" in waited.stderr, "the reason (not migrated) is shown on each try"
    assert "still not ready" in waited.stderr

    [command] = one(render("base"), "Job", "errands-migrate")["spec"]["template"]["spec"]["containers"]
    migrated = box.run(tool("errands"), *command["args"])
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stdout
    assert box.run(tool("errands"), *command["args"]).returncode == 0, "a second run (the next release) is a no-op"

    ready = box.run(str(WAIT_FOR_SCHEMA))
    assert ready.returncode == 0, ready.stderr
    assert "the database is migrated" in ready.stderr


@pytest.fixture
def migrated(box: Container) -> Container:
    done = box.run(tool("errands"), "migrate")
    assert done.returncode == 0, done.stderr
    return box


def stop(process: subprocess.Popen[str], timeout: float) -> tuple[int, float, str]:
    """SIGTERM, as Kubernetes and Docker send it; returns the exit code, the seconds it took, the output."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"still running {timeout} s after SIGTERM:\n{output}")
    return process.returncode, time.monotonic() - started, output


def healthcheck(box: Container, pid: int) -> subprocess.CompletedProcess[str]:
    box.env["ERRANDS_HEALTHCHECK_PID"] = str(pid)
    return box.run(str(HEALTHCHECK), timeout=30)


def test_a_worker_runs_jobs_and_drains_its_running_job_on_sigterm(migrated: Container) -> None:
    client = connect(migrated.settings())
    worker = migrated.start(tool("errands"), *args("errands-worker"))
    try:
        quick = client.enqueue(JobRequest("examples.jobs:add", args=[2, 3]))
        wait_for(lambda: client.get(quick).status is JobState.COMPLETED, 60, "the worker to run a job")
        assert client.get(quick).result == 5
        assert healthcheck(migrated, worker.pid).returncode == 0, "a worker is healthy while it runs"

        slow = client.enqueue(JobRequest("examples.jobs.SampleJob", "process", ["a", "b"]))
        wait_for(lambda: client.get(slow).status is JobState.RUNNING, 60, "the slow job to start")
        code, took, output = stop(worker, timeout=float(migrated.env["ERRANDS_GRACE"]) + 15)
        assert code == 0, output
        assert client.get(slow).status is JobState.COMPLETED, "the grace let the running job finish"
        assert took < float(migrated.env["ERRANDS_GRACE"]), "it stopped once its job was done, not at the grace"
        assert client.workers() == [], "it deregistered"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()
        client.close()


def _get(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            status: int = answer.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def test_serve_answers_its_probes_and_stops_on_sigterm(migrated: Container) -> None:
    port = free_port()
    server = migrated.start(tool("errands"), *args("errands-web", host="127.0.0.1", port=str(port)))
    try:
        base = f"http://127.0.0.1:{port}"
        web = container(render("base"), "errands-web")
        live, ready = web["livenessProbe"]["httpGet"]["path"], web["readinessProbe"]["httpGet"]["path"]
        wait_for(lambda: _get(base + live) == 200, 60, f"{live} to answer")
        assert _get(base + ready) == 200
        assert healthcheck(migrated, server.pid).returncode == 0, "the image's HEALTHCHECK finds /healthz"
        code, took, output = stop(server, timeout=20)
        # uvicorn shuts down gracefully, then raises the SIGTERM again: serve takes that as the clean end it is
        # (0, not "killed by SIGTERM", 143 in a container's status)
        assert code == 0, output
        assert "Application shutdown complete." in output and "Finished server process" in output, output
        assert took < 10, "nothing was in flight: web's terminationGracePeriodSeconds (30) is ample"
        assert _get(base + live) is None
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


def test_the_health_check_fails_when_serve_does_not_answer(box: Container) -> None:
    """A process whose command line says `serve --port P` with nothing listening on P is unhealthy."""
    port = free_port()
    sleeper = "import time; time.sleep(60)"
    stand_in = box.start(sys.executable, "-c", sleeper, "errands", "serve", "--port", str(port))
    try:
        checked = healthcheck(box, stand_in.pid)
        assert checked.returncode == 1
        assert "/healthz" in checked.stderr
    finally:
        stand_in.kill()
        stand_in.communicate()
