"""GET /api/events on a real uvicorn server run in a thread of the test (so the test can look at the process's
ChangeHub): changes arrive as `event: jobs`, quiet streams get a heartbeat comment, a closed stream lets go
of its subscription and the last one stops the reader. (test_observe_live.py runs it in `errands serve` with
a separate worker.)"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from webapi import Api, web_settings

from errands.access import Role, Scope
from errands.client import JobRequest
from errands.web.app import create_app
from errands.web.changes import ChangeHub
from errands.web.routes.events import HUB

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


class Stream:
    """An open /api/events, read line by line on a thread."""

    def __init__(self, url: str, token: str) -> None:
        self.lines: list[str] = []
        self.status = 0
        self._http = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        headers = {"Authorization": f"Bearer {token}"}
        threading.Thread(target=self._read, args=(url, headers), daemon=True).start()

    def _read(self, url: str, headers: dict[str, str]) -> None:
        try:
            with self._http.stream("GET", f"{url}/api/events", headers=headers) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
        except (httpx.HTTPError, RuntimeError):
            pass

    def batches(self) -> list[list[dict[str, Any]]]:
        lines = list(self.lines)
        return [json.loads(data[6:]) for kind, data in itertools.pairwise(lines) if kind == "event: jobs"]

    def close(self) -> None:
        self._http.close()


class Served:
    def __init__(self, app: Any, token: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.app = app
        self.token = token
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def hub(self) -> ChangeHub:
        hub: ChangeHub = getattr(self.app.state, HUB)
        return hub

    def stream(self) -> Stream:
        stream = Stream(self.url, self.token)
        wait_for(lambda: ": live" in stream.lines)
        return stream


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[Served]:
    app = create_app(web_settings(db_url, tmp_path))
    running = Served(app, token="")
    running.thread.start()
    wait_for(lambda: running.server.started)
    api = Api(app, anonymous=None)  # type: ignore[arg-type]  # only its user and token helpers
    name = api.user(Role.VIEWER)
    _, running.token = api.state.accounts.create_token(name, Scope.READ, expires_days=None, name="t", actor="test")
    try:
        yield running
    finally:
        running.server.should_exit = True
        running.thread.join(15)


@pytest.mark.backends("sqlite", "postgresql")
def test_a_change_arrives_as_a_jobs_event(served: Served) -> None:
    stream = served.stream()
    try:
        client = served.app.state.errands.client
        job_id = client.enqueue(JobRequest("examples.jobs:add", args=[1, 2]))
        client.cancel(job_id)
        seen = wait_for(lambda: [job for batch in stream.batches() for job in batch if job["id"] == job_id][-1:])
        wait_for(lambda: any(j["status"] == "cancelled" for b in stream.batches() for j in b if j["id"] == job_id))
        assert seen[0]["target"] == "examples.jobs:add"
        assert stream.status == 200
    finally:
        stream.close()


@pytest.mark.backends("sqlite")
def test_a_quiet_stream_gets_a_heartbeat(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.2)  # FastAPI's keep-alive comment, 15 s by default
    stream = served.stream()
    try:
        wait_for(lambda: any(line.startswith(": ping") for line in stream.lines), 10)
    finally:
        stream.close()


@pytest.mark.backends("sqlite")
def test_streams_share_one_reader_which_stops_when_the_last_closes(served: Served) -> None:
    streams = [served.stream() for _ in range(5)]
    assert served.hub.streams == 5 and served.hub.running
    for stream in streams[:4]:
        stream.close()
    wait_for(lambda: served.hub.streams == 1)
    assert served.hub.running
    streams[4].close()
    wait_for(lambda: served.hub.streams == 0 and not served.hub.running)


@pytest.mark.backends("sqlite")
def test_the_stream_needs_an_identity_and_is_not_rate_limited(db_url: str, tmp_path: Path) -> None:
    app = create_app(web_settings(db_url, tmp_path, rate_limit=2))
    running = Served(app, token="")
    running.thread.start()
    wait_for(lambda: running.server.started)
    try:
        assert httpx.get(f"{running.url}/api/events", timeout=10).status_code == 401
        api = Api(app, anonymous=None)  # type: ignore[arg-type]
        name = api.user(Role.VIEWER)
        _, running.token = api.state.accounts.create_token(name, Scope.READ, expires_days=None, name="t", actor="t")
        streams = [running.stream() for _ in range(4)]  # four opens over a limit of two a minute
        assert all(stream.status == 200 for stream in streams)
        for stream in streams:
            stream.close()
    finally:
        running.server.should_exit = True
        running.thread.join(15)
