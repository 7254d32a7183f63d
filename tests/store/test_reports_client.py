"""The Client's reads and operator actions on every backend: its bounds, bulk runs in batches with progress,
and (PostgreSQL) hostile arguments that jsonb refuses still insert and are simply not found by the args filter."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from errands import bulk
from errands.client import Client, JobRequest
from errands.errors import BulkRunNotFound, InvalidInput
from errands.jobs import JobState, NewJob
from errands.reports import BulkRun, Count, JobSearch
from errands.settings import Settings
from errands.store import Claim, SqlStore

TARGET = "examples.jobs:add"


@pytest.fixture
def client(store: SqlStore, db_url: str, tmp_path: Path) -> Iterator[Client]:
    settings = Settings(
        database_url=db_url,
        allowed_jobs={TARGET: []},
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
        max_retries=4,
    )
    opened = Client(settings, SqlStore(db_url))
    yield opened
    opened.close()


def finished(client: Client, run_id: int, timeout: float = 30) -> BulkRun:
    deadline = time.monotonic() + timeout
    while (run := client.bulk_get(run_id)).status == "running":
        assert time.monotonic() < deadline, f"bulk run {run_id} still running: {run}"
        time.sleep(0.05)
    return run


def test_bounds(client: Client) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        client.search(JobSearch(limit=501))
    with pytest.raises(InvalidInput, match="cap"):
        client.count(JobSearch(), cap=0)
    with pytest.raises(InvalidInput, match="limit"):
        client.failure_groups(limit=0)
    with pytest.raises(InvalidInput, match="action"):
        client.bulk_start("delete", JobSearch(), actor="alice")
    with pytest.raises(InvalidInput, match="actor"):
        client.pause("mail", actor="")
    with pytest.raises(InvalidInput, match="queue"):
        client.pause(" mail", actor="alice")
    with pytest.raises(BulkRunNotFound):
        client.bulk_get(2**63)
    with pytest.raises(BulkRunNotFound):
        client.bulk_get(1)


def test_search_count_pause_through_the_client(client: Client) -> None:
    first = client.enqueue(JobRequest(TARGET, args=[1, 2], queue="mail"))
    client.enqueue(JobRequest(TARGET, args=[3, 4]))
    assert [job.id for job in client.search(JobSearch(args=1)).jobs] == [first]
    assert client.count(JobSearch(), cap=1) == Count(1, exact=False)
    assert client.pause("mail", actor="alice").paused is True
    assert {q.name: q.paused for q in client.queues()} == {"default": False, "mail": True}
    assert client.resume("mail", actor="alice").paused is False
    assert client.stats().by_status["pending"] == Count(2, exact=True)
    assert client.failure_groups() == []


def test_bulk_cancel_walks_every_match_in_batches(
    client: Client, store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH", 50)
    store.jobs_insert_many([NewJob(TARGET, "", queue="a") for _ in range(130)])
    untouched = store.jobs_insert_many([NewJob(TARGET, "", queue="b") for _ in range(5)])
    running = store.job_insert(NewJob(TARGET, "", queue="a"))
    assert store.job_claim_by_id(running, Claim(owner="w", token="t", lease_s=60, worker="h:1")) is not None
    progress: list[dict[str, Any]] = []
    record = store.bulk_run_progress

    def recorded(run_id: int, **counts: Any) -> None:
        progress.append(counts)
        record(run_id, **counts)

    client._store.bulk_run_progress = recorded  # type: ignore[method-assign]
    search = JobSearch(queue="a", statuses=(JobState.PENDING, JobState.RUNNING), limit=3)  # limit: not a bound

    started = client.bulk_start("cancel", search, actor="alice")

    assert (started.status, started.created_by, started.search) == (
        "running",
        "alice",
        {"status": ["pending", "running"], "queue": "a"},
    )
    run = finished(client, started.id)
    assert (run.status, run.total, run.done, run.skipped, run.error) == ("done", 131, 131, 0, None)
    assert progress[0] == {"total": 131}
    assert [p["done"] for p in progress[1:]] == [50, 50, 31]  # newest first: the running job is in the first
    assert client.count(JobSearch(queue="a", statuses=(JobState.CANCELLED,))) == Count(130, exact=True)
    assert client.get(running).cancel_requested is True
    assert all(client.get(job_id).status is JobState.PENDING for job_id in untouched)
    assert "Bulk run" in client.settings.log_file.read_text()


def test_bulk_retry_gives_the_fresh_budget_and_skips_what_changed(client: Client, store: SqlStore) -> None:
    made = store.jobs_insert_many([NewJob(TARGET, "") for _ in range(3)])
    finished(client, client.bulk_start("cancel", JobSearch(), actor="bob").id)
    client.retry(made[1])  # by hand, meanwhile: the bulk retry finds it pending
    run = finished(client, client.bulk_start("retry", JobSearch(statuses=(JobState.CANCELLED,)), actor="bob").id)
    assert (run.total, run.done, run.skipped) == (2, 2, 0)
    again = client.get(made[0])
    assert (again.status, again.budget) == (JobState.PENDING, 4)  # the client's max_retries


def test_a_bulk_run_that_fails_says_why(client: Client, store: SqlStore) -> None:
    store.job_insert(NewJob(TARGET, ""))

    def broken(job_ids: Any, *, now: Any = None) -> Any:
        raise RuntimeError("the batch broke")

    client._store.jobs_cancel_batch = broken  # type: ignore[method-assign]
    run = finished(client, client.bulk_start("cancel", JobSearch(), actor="carol").id)
    assert (run.status, run.error) == ("failed", "RuntimeError: the batch broke")
    assert "Bulk run" in client.settings.error_log_file.read_text()


@pytest.mark.backends("postgresql")
def test_text_jsonb_refuses_still_inserts_and_is_not_found_by_args(client: Client, store: SqlStore) -> None:
    nul = client.enqueue(JobRequest(TARGET, kwargs={"who": "a\x00b", "n": 1}, args=["\x00"]))
    lone = store.job_insert(NewJob(TARGET, "", args=("\udc80", 1), kwargs={"s": "\ud800", "n": 1}))
    emoji = client.enqueue(JobRequest(TARGET, args=["😀", 1], kwargs={"s": "😀", "n": 1}))  # a valid pair
    literal = client.enqueue(JobRequest(TARGET, args=["\\u0000", 1], kwargs={"n": 1}))  # a backslash, not NUL
    assert store.job_get(nul).kwargs == {"who": "a\x00b", "n": 1}
    assert store.job_get(lone).args == ("\udc80", 1)

    def found(args: Any) -> list[int]:
        return [job.id for job in client.search(JobSearch(args=args)).jobs]

    assert found(1) == [literal, emoji]
    assert found({"n": 1}) == [literal, emoji]
    assert found("😀") == [emoji]
    assert found({"s": "😀"}) == [emoji]
    assert found("\\u0000") == [literal]
    assert [job.id for job in client.search(JobSearch()).jobs] == [literal, emoji, lone, nul]  # listed as usual
