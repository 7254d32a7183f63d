"""The Client's door to the logs' lines and the job changes (what the HTTP API's /api/logs and /api/events use):
its inputs checked, its reads through the store, on every backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from errands.client import MAX_LOG_TAIL, Client, JobRequest
from errands.errors import InvalidInput
from errands.jobs import JobState
from errands.settings import Settings
from errands.store import SqlStore


def settings(db_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=db_url,
        allowed_jobs={"app.jobs:work": []},
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
    )


@pytest.fixture
def client(db_url: str, tmp_path: Path) -> Iterator[Client]:
    opened = Client(settings(db_url, tmp_path), SqlStore(db_url))
    yield opened
    opened.close()


@pytest.mark.parametrize(
    ("file", "n"),
    [("jobs", 10), ("", 10), (None, 10), ("job", 0), ("job", MAX_LOG_TAIL + 1), ("job", True), ("job", "5")],
)
@pytest.mark.backends("sqlite")
def test_log_tail_refuses_what_is_not_a_file_and_a_count(client: Client, file: Any, n: Any) -> None:
    with pytest.raises(InvalidInput):
        client.log_tail(file, n)


def test_the_clients_own_lines_reach_log_tail(client: Client, db_url: str, tmp_path: Path) -> None:
    job_id = client.enqueue(JobRequest("app.jobs:work"))
    with pytest.raises(Exception, match="allow"):
        client.enqueue(JobRequest("os:system"))
    client.log.close()  # ships what waits (a Client's close does it too)
    reader = Client(settings(db_url, tmp_path), SqlStore(db_url))
    try:
        queued, refused = reader.log_tail("job", MAX_LOG_TAIL)  # a refusal is in both logs
        assert queued.line.endswith(f"job={job_id} attempt=- Job queued: app.jobs:work on default priority=1")
        assert "Refused job: os:system" in refused.line
        [in_errors] = reader.log_tail("error", 5)  # the same line, stamped a moment later
        assert in_errors.line.split(" ", 1)[1] == refused.line.split(" ", 1)[1]
        assert [line.line for line in reader.log_tail("job", 1)] == [refused.line]
    finally:
        reader.close()


@pytest.mark.parametrize("limit", [0, 10_001, 2.5, True])
@pytest.mark.backends("sqlite")
def test_changes_refuses_a_bad_limit_or_moment(client: Client, limit: Any) -> None:
    with pytest.raises(InvalidInput):
        client.changes(datetime(2026, 1, 1), limit)
    with pytest.raises(InvalidInput):
        client.changes("yesterday", 10)  # type: ignore[arg-type]


def test_changes_and_the_feed_through_the_client(client: Client) -> None:
    feed = client.change_feed()
    start = client.changes(datetime(2000, 1, 1, tzinfo=UTC), 10)
    job_id = client.enqueue(JobRequest("app.jobs:work"))
    client.cancel(job_id)
    [change] = feed.poll()
    assert change.job.id == job_id and change.job.status is JobState.CANCELLED
    assert feed.poll() == []
    # an aware moment is converted to UTC: two hours east is two hours earlier in UTC
    east = timezone(timedelta(hours=2))
    local = (change.changed_at + timedelta(hours=2)).replace(tzinfo=east)
    assert [c.job.id for c in client.changes(local, 10)] == [job_id]
    assert [c.job.id for c in client.changes(datetime(2000, 1, 1), 10)] == [c.job.id for c in start] + [job_id]


def test_listen_changes_is_postgresqls_notify_or_none(client: Client, db_url: str, tmp_path: Path) -> None:
    heard = threading.Event()
    listener = client.listen_changes(heard.set)
    if client._store.url.startswith("postgresql"):  # type: ignore[attr-defined]
        assert listener is not None
        other = Client(settings(db_url, tmp_path), SqlStore(db_url))
        try:
            other.enqueue(JobRequest("app.jobs:work"))
            assert heard.wait(10)
        finally:
            listener.stop()
            other.close()
    else:
        assert listener is None  # the caller polls
