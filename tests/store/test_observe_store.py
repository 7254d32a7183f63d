"""The Store conformance suite: what /readyz and /metrics read (store/observe.py), on every backend."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from errands.errors import StoreError
from errands.jobs import AttemptOutcome, ErrorInfo, JobState, NewJob
from errands.store import Claim, Outcome, SqlStore

T0 = datetime(2026, 1, 1, 12, 0, 0, 250000)
BOUNDS = (0.5, 2.0, 10.0)
BOOM = ErrorInfo("ValueError", "boom")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(store: SqlStore, job_id: int, start: float, end: float, state: JobState, outcome: AttemptOutcome) -> None:
    """One attempt of the job from `start` to `end` (seconds after T0), leaving it in `state`."""
    token = f"tok-{job_id}-{start}"
    job = store.job_claim_by_id(job_id, Claim("w1", token, 600.0, "w1-host:1"), now=at(start))
    assert job is not None
    error = None if outcome is AttemptOutcome.COMPLETED else BOOM
    retry_at = at(end) if state is JobState.PENDING else None
    ended = Outcome(job_id, token, job.attempts, outcome, state, error=error, retry_at=retry_at)
    finished = store.jobs_finish([ended], now=at(end))
    assert finished[0].recorded


def new_job(store: SqlStore) -> int:
    return store.job_insert(NewJob("t.A", "", max_attempts=5), now=at(-100))


def test_ping_makes_a_round_trip(store: SqlStore) -> None:
    store.database_ping()


def test_ping_fails_as_a_store_error_when_the_database_is_gone() -> None:
    store = SqlStore("postgresql://nobody@127.0.0.1:1/none")  # a closed port: nothing answers
    try:
        with pytest.raises(StoreError):
            store.database_ping()
    finally:
        store.close()


def test_recent_finishes_count_durations_statuses_and_attempts(store: SqlStore) -> None:
    quick = new_job(store)
    run(store, quick, 0, 0.25, JobState.COMPLETED, AttemptOutcome.COMPLETED)  # 0.25 s
    medium = new_job(store)
    run(store, medium, 1, 2, JobState.PENDING, AttemptOutcome.FAILED)  # a retried attempt first
    run(store, medium, 5, 6.5, JobState.COMPLETED, AttemptOutcome.COMPLETED)  # the last attempt: 1.5 s
    slow = new_job(store)
    run(store, slow, 10, 40, JobState.FAILED, AttemptOutcome.TIMED_OUT)  # 30 s: past every bound
    old = new_job(store)
    run(store, old, -90, -80, JobState.COMPLETED, AttemptOutcome.COMPLETED)  # outside the window
    store.job_cancel(new_job(store), now=at(30))  # cancelled: not a duration
    new_job(store)  # pending: nothing finished

    recent = store.jobs_finished_recently(60.0, BOUNDS, now=at(50))

    assert recent.count == 3
    assert recent.buckets == (1, 2, 2)  # cumulative: <= 0.5 s, <= 2 s, <= 10 s
    assert recent.sum_s == pytest.approx(0.25 + 1.5 + 30, abs=0.01)
    assert recent.by_status == {"completed": 2, "failed": 1}
    assert recent.attempts == {"completed": 2, "failed": 1, "timed_out": 1}
    assert recent.bounds == BOUNDS and recent.window_s == 60.0


def test_recent_finishes_of_an_empty_window_are_zeros(store: SqlStore) -> None:
    new_job(store)
    recent = store.jobs_finished_recently(60.0, BOUNDS, now=at(0))
    assert (recent.count, recent.sum_s, recent.buckets) == (0, 0.0, (0, 0, 0))
    assert recent.by_status == {"completed": 0, "failed": 0}
    assert recent.attempts == {}


def test_recent_finishes_on_the_database_clock(store: SqlStore) -> None:
    """Without now=, the window ends at the database's clock: a job finished just now is in it."""
    job_id = store.job_insert(NewJob("t.A", ""))
    job = store.job_claim_by_id(job_id, Claim("w1", "tok", 600.0, "w1-host:1"))
    assert job is not None
    store.jobs_finish([Outcome(job_id, "tok", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED)])
    recent = store.jobs_finished_recently(60.0, BOUNDS)
    assert recent.count == 1 and recent.buckets[-1] == 1
