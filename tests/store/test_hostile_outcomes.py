"""Conformance: what a job raised or returned is stored, on every backend, however hostile (issue 10, item 1).

NUL in any text (PostgreSQL refuses it), an error type over its column (MariaDB refuses it), a huge message:
made storable at the store's boundary. A batch the database still refuses is written outcome by outcome, and
one it refuses alone is recorded failed ("UnstorableOutcome"): never left running, never blocking the batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from errands.errors import StoreError
from errands.jobs import AttemptOutcome, ErrorInfo, Job, JobState, NewJob
from errands.store import Claim, Finished, Outcome, SqlStore
from errands.store.storable import MESSAGE_LIMIT, TRACEBACK_LIMIT, TYPE_LIMIT, storable_text

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running_job(store: SqlStore, token: str = "tok-1") -> Job:
    job_id = store.job_insert(NewJob("t.A", "run"), now=at(-1))
    job = store.job_claim_by_id(job_id, Claim("w1", token, 30.0, "w1-host:1"), now=T0)
    assert job is not None
    return job


def failed(job: Job, error: ErrorInfo, token: str = "tok-1") -> Outcome:
    return Outcome(job.id, token, 1, AttemptOutcome.FAILED, JobState.FAILED, error=error)


def test_nul_in_the_message_and_traceback_is_stored_escaped(store: SqlStore) -> None:
    job = running_job(store)
    error = ErrorInfo("ValueError", "bad\x00msg", "Traceback\x00 ...\nValueError: bad\x00msg")
    assert store.jobs_finish([failed(job, error)], now=at(1)) == [Finished(job.id, recorded=True)]
    stored = store.job_get(job.id)
    assert (stored.status, stored.error_type, stored.error_message) == (JobState.FAILED, "ValueError", "bad\\x00msg")
    assert stored.error_traceback == "Traceback\\x00 ...\nValueError: bad\\x00msg"
    [attempt] = store.job_attempts(job.id)
    assert (attempt.outcome, attempt.error_message) == (AttemptOutcome.FAILED, "bad\\x00msg")


def test_nul_in_a_retry_s_error_is_stored_escaped(store: SqlStore) -> None:
    job = running_job(store)
    retry = Outcome(
        job.id, "tok-1", 1, AttemptOutcome.FAILED, JobState.PENDING, error=ErrorInfo("E", "a\x00b"), retry_at=at(9)
    )
    assert store.jobs_finish([retry], now=at(1))[0].recorded
    assert (store.job_get(job.id).status, store.job_get(job.id).error_message) == (JobState.PENDING, "a\\x00b")


@pytest.mark.parametrize("result", ["bad\x00result", {"k\x00": ["\x00", "\ud800"]}])
def test_a_result_with_nul_or_a_lone_surrogate_round_trips(store: SqlStore, result: object) -> None:
    jobs = [running_job(store, token=f"tok-{i}") for i in range(2)]
    completed = [
        Outcome(j.id, f"tok-{i}", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=result)
        for i, j in enumerate(jobs)
    ]
    assert all(f.recorded for f in store.jobs_finish(completed, now=at(1)))  # the batch of plain completions
    assert [store.job_get(j.id).result for j in jobs] == [result, result]


def test_an_error_type_over_its_column_is_cut_to_fit(store: SqlStore) -> None:
    job = running_job(store)
    long_type = "Error" + "X" * 295  # 300 characters: the column holds 255
    assert store.jobs_finish([failed(job, ErrorInfo(long_type, "boom"))], now=at(1))[0].recorded
    stored = store.job_get(job.id)
    assert stored.status is JobState.FAILED
    assert stored.error_type is not None and len(stored.error_type) == TYPE_LIMIT
    assert stored.error_type.startswith("ErrorXXX") and "characters in all" in stored.error_type
    assert store.job_attempts(job.id)[0].error_type == stored.error_type


def test_a_huge_message_and_traceback_are_bounded(store: SqlStore) -> None:
    job = running_job(store)
    message = "start " + "m" * 1_000_000
    traceback = "Traceback (most recent call last):\n" + "  frame\n" * 100_000 + "ValueError: the end"
    assert store.jobs_finish([failed(job, ErrorInfo("ValueError", message, traceback))], now=at(1))[0].recorded
    stored = store.job_get(job.id)
    assert stored.error_message is not None and len(stored.error_message) == MESSAGE_LIMIT
    assert stored.error_message.startswith("start mmm")
    assert stored.error_traceback is not None and len(stored.error_traceback) == TRACEBACK_LIMIT
    assert stored.error_traceback.endswith("ValueError: the end")  # where it was raised


def test_one_hostile_outcome_does_not_hold_back_its_batch(store: SqlStore) -> None:
    jobs = [running_job(store, token=f"tok-{i}") for i in range(4)]
    batch = [
        Outcome(jobs[0].id, "tok-0", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=0),
        failed(jobs[1], ErrorInfo("ValueError", "bad\x00msg"), token="tok-1"),
        failed(jobs[2], ErrorInfo("E" * 300, "long type"), token="tok-2"),
        Outcome(jobs[3].id, "tok-3", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=3),
    ]
    assert store.jobs_finish(batch, now=at(1)) == [Finished(j.id, recorded=True) for j in jobs]
    statuses = [store.job_get(j.id).status for j in jobs]
    assert statuses == [JobState.COMPLETED, JobState.FAILED, JobState.FAILED, JobState.COMPLETED]


@pytest.mark.backends("postgresql", "mariadb")  # SQLite stores any length: nothing there refuses these
def test_an_outcome_the_database_refuses_fails_alone(store: SqlStore) -> None:
    """A row still refused once made storable (here: a follow-up the database refuses) is recorded failed as
    UnstorableOutcome; the rest of its batch is written as it was."""
    jobs = [running_job(store, token=f"tok-{i}") for i in range(3)]
    refused = NewJob("t.Next", "", queue="q" * 500)  # the queue column holds 100 characters
    batch = [
        Outcome(jobs[0].id, "tok-0", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="zero"),
        Outcome(jobs[1].id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=(refused,)),
        Outcome(jobs[2].id, "tok-2", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=(NewJob("t.B", ""),)),
    ]
    finished = store.jobs_finish(batch, now=at(1))
    assert [(f.job_id, f.recorded) for f in finished] == [(j.id, True) for j in jobs]
    assert store.job_get(jobs[0].id).result == "zero"
    unstorable = store.job_get(jobs[1].id)
    assert (unstorable.status, unstorable.error_type) == (JobState.FAILED, "UnstorableOutcome")
    assert unstorable.error_message is not None and "could not be stored" in unstorable.error_message
    assert store.job_attempts(jobs[1].id)[0].outcome is AttemptOutcome.FAILED
    assert store.job_follow_ups(jobs[1].id) == []
    assert len(store.job_follow_ups(jobs[2].id)) == 1 == len(finished[2].follow_up_ids)
    assert store.jobs_count_by_status() == {"completed": 2, "failed": 1, "pending": 1}


@pytest.mark.backends("postgresql", "mariadb")
def test_a_bulk_insert_the_database_refuses_is_a_store_error_and_writes_nothing(store: SqlStore) -> None:
    """On PostgreSQL the batch goes in by COPY on a raw psycopg cursor: its errors are psycopg's own."""
    news = [NewJob("t.A", ""), NewJob("t.A", "", queue="q" * 500)]
    with pytest.raises(StoreError, match="database error"):
        store.jobs_insert_many(news)
    assert store.jobs_count_by_status() == {}
    store.jobs_insert_many([NewJob("t.A", "")])  # the connection it used is fine again
    assert store.jobs_count_by_status() == {"pending": 1}


def test_storable_text_escapes_and_bounds() -> None:
    assert storable_text("a\x00b", 10) == "a\\x00b"
    assert storable_text("lone \ud800 surrogate", 100) == "lone \\ud800 surrogate"
    assert storable_text("plain", 5) == "plain"
    cut = storable_text("x" * 1000, 100)
    assert len(cut) == 100 and cut.startswith("x" * 60) and cut.endswith("[cut: 1000 characters in all]")
    tail = storable_text("head " + "y" * 1000 + " tail", 100, keep_end=True)
    assert len(tail) == 100 and tail.endswith("y tail") and "characters in all" in tail
