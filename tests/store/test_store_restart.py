"""The store survives its database restarting (issue 11 item 11), on a throwaway PostgreSQL (tests/pgserver.py).

While the database is down, calls raise StoreUnavailable; once it is back, the first call succeeds and so does
every one after it, with no ping per call (the pool replaces the connections the restart closed: liveness.py).
The listener resumes by itself. The worker's process is in tests/worker/test_worker_db_restart.py, the API's
in tests/web/.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from errands.client import Client, JobRequest, connect
from errands.errors import StoreError, StoreUnavailable
from errands.jobs import NewJob
from errands.settings import Settings
from errands.store import SqlStore
from errands.store.migrate import upgrade
from errands.store.notify import JOBS_CHANNEL
from errands.store.postgresql import PgListener
from pgserver import PgServer

T = TypeVar("T")
TARGET = "app.tasks:noop"


def wait_for(predicate: Callable[[], T], timeout: float = 30, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while not (found := predicate()):
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)
    return found


def migrated(url: str) -> str:
    store = SqlStore(url)
    try:
        upgrade(store)
    finally:
        store.close()
    return url


def client_on(url: str, tmp_path: Path) -> Client:
    settings = Settings(
        database_url=migrated(url),
        allowed_jobs={TARGET: []},
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
    )
    return connect(settings)


def test_the_throwaway_server_keeps_its_port_and_data_across_restarts(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (1)")
    url = pg_server.url
    pg_server.stop("immediate")  # a crash: what was committed survives it (fsync is off, not the WAL)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
    pg_server.start()
    pg_server.restart("fast")
    assert pg_server.url == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]


def test_two_throwaway_servers_are_apart(pg_server: PgServer) -> None:
    with PgServer() as other:
        assert other.port != pg_server.port and other.data != pg_server.data
        with psycopg.connect(other.url, autocommit=True) as conn:
            conn.execute("CREATE TABLE only_here (n int)")
        with psycopg.connect(pg_server.url) as conn:
            assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    assert not other.data.exists()


@dataclass(frozen=True)
class Call:
    started: float
    job_id: int | None
    error: StoreError | None


class EnqueueLoop:
    """A thread that enqueues as fast as it can, recording every call; a failed call is retried 10 ms later."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> EnqueueLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.calls.append(Call(started, self.client.enqueue(JobRequest(TARGET)), None))
            except StoreError as exc:
                self.calls.append(Call(started, None, exc))
                self._stop.wait(0.01)

    def succeeded(self, since: float = 0.0) -> list[Call]:
        return [call for call in list(self.calls) if call.error is None and call.started >= since]

    def failed(self) -> list[Call]:
        return [call for call in list(self.calls) if call.error is not None]


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_client_enqueuing_through_a_restart_fails_only_while_the_database_is_down(
    pg_server: PgServer, tmp_path: Path, mode: str
) -> None:
    client = client_on(pg_server.url, tmp_path)
    try:
        with EnqueueLoop(client) as loop:
            wait_for(lambda: len(loop.succeeded()) >= 20, what="enqueues before the restart")
            pg_server.stop(mode)  # type: ignore[arg-type]
            wait_for(lambda: len(loop.failed()) >= 3, what="enqueues failing while the database is down")
            pg_server.start()
            back = time.monotonic()  # the server accepts connections from here on
            wait_for(lambda: len(loop.succeeded(since=back)) >= 50, what="enqueues after the restart")

        assert all(isinstance(call.error, StoreUnavailable) for call in loop.failed()), {
            repr(call.error) for call in loop.failed()
        }
        assert [call for call in loop.calls if call.started >= back and call.error is not None] == []
        # every id a call returned is in the database: nothing acknowledged was lost
        acknowledged = [call.job_id for call in loop.calls if call.job_id is not None]
        assert len(set(acknowledged)) == len(acknowledged)
        assert all(client.get(job_id).id == job_id for job_id in acknowledged)
    finally:
        client.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_store_idle_through_a_restart_succeeds_at_its_first_call_after_it(pg_server: PgServer, mode: str) -> None:
    """Nothing failed during the outage to tell the pool: the pool's connections (three, as concurrent calls
    leave them) are found closed at checkout and replaced, so the first call after the restart succeeds."""
    store = SqlStore(migrated(pg_server.url))
    try:
        held = [store.engine.connect() for _ in range(3)]
        for conn in held:
            conn.close()  # back to the pool, idle
        assert store.engine.pool.checkedin() == 3  # type: ignore[attr-defined]
        pg_server.restart(mode)  # type: ignore[arg-type]

        for n in range(10):
            store.job_insert(NewJob(TARGET, "", queue=f"after-{n}"))
    finally:
        store.close()


def test_the_listener_resumes_after_a_restart(pg_server: PgServer) -> None:
    store = SqlStore(migrated(pg_server.url))
    heard: queue.Queue[tuple[str, str]] = queue.Queue()
    problems: list[str] = []
    listener = store.listen(lambda channel, payload: heard.put((channel, payload)), problems.append)
    assert isinstance(listener, PgListener)
    try:
        store.job_insert(NewJob(TARGET, "", queue="before"))
        assert heard.get(timeout=10) == (JOBS_CHANNEL, "before")
        first_session = listener.backend_pid

        pg_server.restart("fast")
        wait_for(lambda: listener.backend_pid != first_session, what="the listener to listen again")
        store.job_insert(NewJob(TARGET, "", queue="after"))

        seen = []
        while (JOBS_CHANNEL, "after") not in seen:
            seen.append(heard.get(timeout=10))
        assert ("reconnect", "") in seen  # the worker polls once, for what it may have missed meanwhile
        assert problems and "reconnecting" in problems[0]
    finally:
        listener.stop()
        store.close()
