"""The listeners' threads (PostgreSQL LISTEN/NOTIFY, SQLite's WAL watch) outlive what goes wrong in them: a
callback that raises, a connection refused or lost. Each failure is told to on_error, and delivery goes on
(issue 9, item 8)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from errands.jobs import NewJob
from errands.store import SqlStore
from errands.store.postgresql import PgListener


class Heard:
    """What a listener delivered and reported, with a wait on each."""

    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._fail_first = fail_first
        self._changed = threading.Condition()

    def callback(self, channel: str, payload: str) -> None:
        with self._changed:
            self.calls.append((channel, payload))
            self._changed.notify_all()
            if len(self.calls) <= self._fail_first:
                raise RuntimeError(f"callback failure {len(self.calls)}")

    def on_error(self, message: str) -> None:
        with self._changed:
            self.errors.append(message)
            self._changed.notify_all()

    def wait(self, what: Callable[[], bool], timeout: float = 10.0) -> None:
        with self._changed:
            assert self._changed.wait_for(what, timeout), f"calls {self.calls}, errors {self.errors}"


@pytest.mark.backends("sqlite", "postgresql")
def test_a_callback_that_raises_is_reported_and_the_listener_goes_on(store: SqlStore, db_url: str) -> None:
    heard = Heard(fail_first=1)
    listener = store.listen(heard.callback, heard.on_error)
    assert listener is not None
    other = SqlStore(db_url)  # another process's enqueues, as far as the listener can tell
    try:
        other.job_insert(NewJob("t.A", "", queue="first"))
        heard.wait(lambda: len(heard.errors) == 1)
        assert "RuntimeError: callback failure 1" in heard.errors[0]
        delivered = len(heard.calls)
        other.job_insert(NewJob("t.A", "", queue="second"))
        heard.wait(lambda: len(heard.calls) > delivered)
    finally:
        listener.stop()
        other.close()
    assert len(heard.errors) == 1


@pytest.mark.backends("postgresql")
def test_a_lost_connection_is_reported_and_listening_resumes(store: SqlStore, db_url: str) -> None:
    heard = Heard()
    listener = store.listen(heard.callback, heard.on_error)
    assert listener is not None
    try:
        assert isinstance(listener, PgListener) and listener.backend_pid is not None
        with store.engine.connect() as conn:  # end the listener's session, as a server restart would
            ended = conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.backend_pid}).scalar()
        assert ended
        heard.wait(lambda: bool(heard.errors) and ("reconnect", "") in heard.calls)
        assert "listener: LISTEN on" in heard.errors[0]
        deadline = time.monotonic() + 10
        while not [c for c in heard.calls if c[1] == "again"] and time.monotonic() < deadline:
            store.job_insert(NewJob("t.A", "", queue="again"))  # until the new session listens
            heard.wait(lambda: len(heard.calls) > 0, timeout=0.5)
        assert ("errands_jobs", "again") in heard.calls
    finally:
        listener.stop()


def test_a_connection_refused_is_reported_each_time() -> None:
    heard = Heard()
    unreachable = sa.make_url("postgresql+psycopg://nobody@127.0.0.1:1/none")
    listener = PgListener(unreachable, heard.callback, heard.on_error, retry_s=0.05).start(ready_timeout_s=0)
    try:
        heard.wait(lambda: len(heard.errors) >= 2)
    finally:
        listener.stop()
    assert all(
        e.startswith("listener: LISTEN on postgresql+psycopg://nobody@127.0.0.1:1/none failed") for e in heard.errors
    )
    assert ("reconnect", "") in heard.calls
