"""The observing side against real processes: a real `errands serve` and a SEPARATE `errands worker`, sharing
only the database (and a working directory, as two containers would share nothing but the database's URL and
the code). The event stream shows a job going from pending to completed as the worker runs it; the logs
endpoint shows the lines the worker wrote; /metrics counts what it did."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from errands.access import Role, Scope
from errands.accounts import Accounts
from errands.settings import Settings

pytestmark = pytest.mark.slow
T = TypeVar("T")

JOBS = '''
"""Jobs of the live web tests."""


def add(a, b):
    return a + b


def boom():
    raise RuntimeError("boom from the worker")
'''
CONFIG = """
[allowed_jobs]
"webobsjobs:add" = []
"webobsjobs:boom" = []
"""
PASSWORD = "a password long enough"
START_TIMEOUT_S = 60.0


def wait_for(predicate: Callable[[], T], timeout_s: float = 60.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s waiting for {what or predicate}"
        time.sleep(0.05)
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class EventReader:
    """Reads a server-sent event stream on a thread: `events` gets (name, data) per event, "comment" for a
    comment line."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, str]] = []
        self.status: int | None = None
        self.content_type = ""
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._http.stream("GET", url, headers=headers) as response:
                self.status = response.status_code
                self.content_type = response.headers.get("content-type", "")
                name, data = "message", []
                for line in response.iter_lines():
                    if line.startswith(":"):
                        self.events.append(("comment", line[1:].strip()))
                    elif line.startswith("event:"):
                        name = line.partition(":")[2].strip()
                    elif line.startswith("data:"):
                        data.append(line.partition(":")[2].removeprefix(" "))
                    elif not line and data:
                        self.events.append((name, "\n".join(data)))
                        name, data = "message", []
        except (httpx.HTTPError, RuntimeError):
            pass  # closed by the test

    def job_states(self, job_id: int) -> list[str]:
        import json

        return [
            job["status"]
            for name, data in list(self.events)
            if name == "jobs"
            for job in json.loads(data)
            if job["id"] == job_id
        ]

    def close(self) -> None:
        self._http.close()


@dataclass
class Live:
    dir: Path
    db_url: str
    url: str = ""
    token: str = ""
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("ERRANDS_", "JOB_"))}
        quick = {"ERRANDS_POLL_INTERVAL": "0.1", "ERRANDS_MAX_RETRIES": "1", "PYTHONUNBUFFERED": "1"}
        quick["ERRANDS_RATE_LIMIT"] = "100000"  # the tests poll
        return {**env, **quick, "ERRANDS_DATABASE_URL": self.db_url}

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "errands", *args],
            cwd=self.dir,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.procs.append(process)
        return process

    def serve(self) -> None:
        port = free_port()
        server = self.spawn("serve", "--port", str(port))
        self.url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert server.poll() is None, f"errands serve exited with {server.returncode}"
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, START_TIMEOUT_S, "errands serve to answer")

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30)

    def stop(self) -> None:
        for process in self.procs:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
        for process in self.procs:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[Live]:
    (tmp_path / "webobsjobs.py").write_text(JOBS)
    (tmp_path / "errands.toml").write_text(CONFIG)
    accounts = Accounts.open(Settings(database_url=db_url))
    try:
        accounts.create_user("olga", Role.OPERATOR, PASSWORD, actor="test")
        _, token = accounts.create_token("olga", Scope.OPERATE, expires_days=None, name="live", actor="test")
    finally:
        accounts.close()
    running = Live(tmp_path, db_url, token=token)
    try:
        running.serve()
        yield running
    finally:
        running.stop()


def completed_lines(lines: list[str], job_id: int) -> list[str]:
    return [line for line in lines if f"job={job_id} " in line and "Job completed: webobsjobs:add" in line]


@pytest.mark.backends("sqlite", "postgresql")
def test_stream_logs_and_metrics_follow_a_separate_worker(live: Live) -> None:
    stream = EventReader(f"{live.url}/api/events", {"Authorization": f"Bearer {live.token}"})
    try:
        wait_for(lambda: ("comment", "live") in stream.events, 30, "the stream to go live")
        assert stream.status == 200 and stream.content_type.startswith("text/event-stream")
        with live.http() as http:
            enqueued = http.post("/api/jobs", json={"target": "webobsjobs:add", "args": [2, 3]})
            assert enqueued.status_code == 201, enqueued.text
            job_id = enqueued.json()["id"]
            failing = http.post("/api/jobs", json={"target": "webobsjobs:boom"}).json()["id"]
            wait_for(lambda: stream.job_states(job_id), 30, "the enqueue on the stream")

            live.spawn("worker", "--concurrency", "1")  # a separate process: only the database is shared
            wait_for(lambda: "completed" in stream.job_states(job_id), 60, "the completion on the stream")
            states = stream.job_states(job_id)
            assert states[0] == "pending" and states[-1] == "completed"
            wait_for(lambda: http.get(f"/api/jobs/{failing}").json()["status"] == "failed", 60, "the failure")

            check_logs(live, http, job_id, failing)
            check_metrics(http)
    finally:
        stream.close()


def check_logs(live: Live, http: httpx.Client, job_id: int, failing: int) -> None:
    """The worker's lines, read back through the API exactly as the worker wrote them to its files."""
    logs = wait_for(
        lambda: (
            (body := http.get("/api/logs", params={"lines": 1000}).json())
            and completed_lines(body["job"], job_id)
            and any(f"job={failing} " in line for line in body["error"])
            and body
        ),
        30,
        "the worker's lines in the database",
    )
    written = (live.dir / "logs" / "background_jobs.log").read_text().splitlines()
    assert completed_lines(logs["job"], job_id) == completed_lines(written, job_id)  # the worker wrote it
    assert set(logs["job"]) <= set(written)  # every line exactly as in the file
    errors = (live.dir / "logs" / "background_jobs_errors.log").read_text().splitlines()
    assert any("boom from the worker" in line for line in logs["error"])
    assert set(logs["error"]) <= set(errors)
    only_errors = http.get("/api/logs", params={"file": "error", "lines": 1}).json()
    assert list(only_errors) == ["error"] and len(only_errors["error"]) == 1


def check_metrics(http: httpx.Client) -> None:
    response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert all(name.startswith("errands_") for name, _ in samples), sorted({name for name, _ in samples})
    assert samples[("errands_jobs", (("status", "completed"),))] >= 1
    assert samples[("errands_jobs", (("status", "failed"),))] >= 1
    assert samples[("errands_workers", ())] == 1
    assert samples[("errands_jobs_finished_last_hour", (("status", "completed"),))] >= 1
    assert samples[("errands_job_duration_seconds_gcount", ())] >= 2
    assert samples[("errands_job_attempts_recent", (("outcome", "failed"),))] >= 1
    assert samples[("errands_queue_due_jobs", (("queue", "default"),))] == 0
