"""The Store conformance suite: operator actions (cancel, retry) and pruning old jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from errands.errors import InvalidTransition, JobNotFound
from errands.jobs import AttemptOutcome, ErrorInfo, Job, JobState, Lease, NewJob
from errands.store import Claim, JobFilter, Outcome, RetryBudget, SqlStore, sql

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)
BOOM = ErrorInfo("ValueError", "boom", "Traceback ...")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim_for(owner: str = "w1", token: str = "tok-1", lease_s: float = 30.0) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=f"{owner}-host:1")


def running_job(store: SqlStore, token: str = "tok-1", max_attempts: int = 3) -> Job:
    job_id = store.job_insert(NewJob("t.A", "", max_attempts=max_attempts), now=at(-1))
    job = store.job_claim_by_id(job_id, claim_for(token=token), now=T0)
    assert job is not None
    return job


def finish(store: SqlStore, job: Job, token: str, outcome: AttemptOutcome, state: JobState, when: datetime) -> None:
    error = None if state is JobState.COMPLETED else BOOM
    assert store.jobs_finish([Outcome(job.id, token, job.attempts, outcome, state, error=error)], now=when)[0].recorded


def failed_job(store: SqlStore, max_attempts: int = 3) -> Job:
    """A job that used its whole budget: `max_attempts` failed attempts, the last at T0 + 10 * n."""
    job_id = store.job_insert(NewJob("t.A", "", max_attempts=max_attempts), now=T0)
    for n in range(1, max_attempts + 1):
        job = store.job_claim_by_id(job_id, claim_for(token=f"tok-{n}"), now=at(10 * n - 5))
        assert job is not None
        last = n == max_attempts
        state = JobState.FAILED if last else JobState.PENDING
        finish(store, job, f"tok-{n}", AttemptOutcome.FAILED, state, at(10 * n))
    failed = store.job_get(job_id)
    assert failed.status is JobState.FAILED
    return failed


# job_cancel -------------------------------------------------------------------------------------------------


def test_cancel_a_pending_job(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""), now=T0)
    cancelled = store.job_cancel(job_id, now=at(5))
    assert cancelled == store.job_get(job_id)
    assert cancelled.status is JobState.CANCELLED
    assert cancelled.finished_at == at(5)
    assert cancelled.cancel_requested is False
    assert cancelled.attempts == 0
    assert store.jobs_claim(claim_for(), 10, now=at(6)) == []
    assert store.job_attempts(job_id) == []


def test_cancel_a_reserved_pending_job_drops_the_reservation(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""), reserve=Lease("runner", "tok-r", at(60)), now=T0)
    cancelled = store.job_cancel(job_id, now=at(5))
    assert cancelled.status is JobState.CANCELLED
    assert cancelled.lease is None
    assert store.job_claim_by_id(job_id, claim_for(owner="runner", token="tok-r"), now=at(6)) is None


def test_cancel_a_running_job_requests_it(store: SqlStore) -> None:
    job = running_job(store, token="tok-1")
    other = running_job(store, token="tok-2")
    pending = store.job_insert(NewJob("t.A", ""), now=T0)
    assert store.jobs_cancel_requested([job.id, other.id, pending]) == []

    requested = store.job_cancel(job.id, now=at(5))
    assert requested == store.job_get(job.id)
    assert requested.status is JobState.RUNNING
    assert requested.cancel_requested is True
    assert requested.finished_at is None
    assert requested.lease == job.lease  # its owner still holds it and stops it
    assert store.jobs_cancel_requested([job.id, other.id, pending, 999_999]) == [job.id]
    assert store.jobs_cancel_requested([other.id]) == []
    assert store.jobs_cancel_requested([]) == []

    # asking twice is harmless
    assert store.job_cancel(job.id, now=at(6)).cancel_requested is True

    # the owner stops it
    finish(store, job, "tok-1", AttemptOutcome.CANCELLED, JobState.CANCELLED, at(7))
    done = store.job_get(job.id)
    assert (done.status, done.finished_at) == (JobState.CANCELLED, at(7))


def test_cancel_a_finished_job_is_an_invalid_transition(store: SqlStore) -> None:
    for n, (state, outcome) in enumerate(
        [
            (JobState.COMPLETED, AttemptOutcome.COMPLETED),
            (JobState.FAILED, AttemptOutcome.FAILED),
            (JobState.CANCELLED, AttemptOutcome.CANCELLED),
        ]
    ):
        job = running_job(store, token=f"tok-{n}")
        finish(store, job, f"tok-{n}", outcome, state, at(5))
        before = store.job_get(job.id)
        with pytest.raises(InvalidTransition) as caught:
            store.job_cancel(job.id, now=at(6))
        assert (caught.value.job_id, caught.value.from_, caught.value.to) == (job.id, state.value, "cancelled")
        assert store.job_get(job.id) == before


def test_cancel_a_missing_job(store: SqlStore) -> None:
    with pytest.raises(JobNotFound) as caught:
        store.job_cancel(999_999, now=T0)
    assert caught.value.job_id == 999_999


# job_retry --------------------------------------------------------------------------------------------------


def test_retry_a_failed_job_gives_a_fresh_budget(store: SqlStore) -> None:
    failed = failed_job(store, max_attempts=3)
    assert (failed.attempts, failed.max_attempts, failed.uncharged_attempts) == (3, 3, 0)
    assert failed.budget - failed.charged_attempts == 0

    retried = store.job_retry(failed.id, RetryBudget(attempts=2), now=at(100))
    assert retried == store.job_get(failed.id)
    assert retried.status is JobState.PENDING
    assert retried.attempts == 3  # attempts keeps counting
    assert retried.uncharged_attempts == 3
    assert retried.max_attempts == 5
    assert retried.budget == 2
    assert retried.charged_attempts == 0
    assert retried.lost_attempts == 0
    assert retried.scheduled_at == at(100)
    assert retried.finished_at is None
    assert retried.lease is None
    assert retried.cancel_requested is False

    [again] = store.jobs_claim(claim_for(token="tok-again"), 1, now=at(100))
    assert again.attempts == 4
    assert [a.number for a in store.job_attempts(failed.id)] == [1, 2, 3, 4]


def test_retry_resets_lost_attempts(store: SqlStore) -> None:
    job = running_job(store)
    assert [r.failed for r in store.jobs_rescue_expired(1, now=at(31))] == [True]
    lost = store.job_get(job.id)
    assert (lost.status, lost.error_type, lost.lost_attempts) == (JobState.FAILED, "WorkerLost", 1)
    retried = store.job_retry(job.id, RetryBudget(3), now=at(40))
    assert retried.status is JobState.PENDING
    assert retried.lost_attempts == 0
    assert retried.attempts == 1
    assert retried.uncharged_attempts == 1
    assert retried.max_attempts == 4


def test_retry_a_cancelled_job(store: SqlStore) -> None:
    never_ran = store.job_insert(NewJob("t.A", ""), now=T0)
    store.job_cancel(never_ran, now=at(1))
    retried = store.job_retry(never_ran, RetryBudget(3), now=at(2))
    assert (retried.status, retried.attempts, retried.uncharged_attempts, retried.max_attempts) == (
        JobState.PENDING,
        0,
        0,
        3,
    )
    assert retried.finished_at is None

    job = running_job(store, token="tok-2")
    store.job_cancel(job.id, now=at(1))
    finish(store, job, "tok-2", AttemptOutcome.CANCELLED, JobState.CANCELLED, at(2))
    retried = store.job_retry(job.id, RetryBudget(2), now=at(3))
    assert retried.status is JobState.PENDING
    assert retried.cancel_requested is False
    assert (retried.attempts, retried.uncharged_attempts, retried.max_attempts) == (1, 1, 3)
    assert retried.scheduled_at == at(3)
    assert {j.id for j in store.jobs_claim(claim_for(token="tok-3"), 10, now=at(3))} == {never_ran, job.id}


def test_retry_twice_never_lowers_attempts(store: SqlStore) -> None:
    failed = failed_job(store, max_attempts=2)
    first = store.job_retry(failed.id, RetryBudget(1), now=at(100))
    job = store.job_claim_by_id(failed.id, claim_for(token="tok-x"), now=at(101))
    assert job is not None
    finish(store, job, "tok-x", AttemptOutcome.FAILED, JobState.FAILED, at(102))
    second = store.job_retry(failed.id, RetryBudget(1), now=at(103))
    assert failed.attempts <= first.attempts < second.attempts
    assert (second.attempts, second.uncharged_attempts, second.max_attempts) == (3, 3, 4)


def test_retry_is_refused_unless_failed_or_cancelled(store: SqlStore) -> None:
    pending = store.job_insert(NewJob("t.A", ""), now=T0)
    running = running_job(store, token="tok-r")
    completed = running_job(store, token="tok-c")
    finish(store, completed, "tok-c", AttemptOutcome.COMPLETED, JobState.COMPLETED, at(5))
    for job_id, state in [(pending, "pending"), (running.id, "running"), (completed.id, "completed")]:
        before = store.job_get(job_id)
        with pytest.raises(InvalidTransition) as caught:
            store.job_retry(job_id, RetryBudget(3), now=at(6))
        assert (caught.value.job_id, caught.value.from_, caught.value.to) == (job_id, state, "pending")
        assert store.job_get(job_id) == before


def test_retry_a_missing_job(store: SqlStore) -> None:
    with pytest.raises(JobNotFound):
        store.job_retry(999_999, RetryBudget(3), now=T0)


# jobs_prune -------------------------------------------------------------------------------------------------


def test_prune_deletes_only_old_finished_jobs_and_their_attempts(store: SqlStore) -> None:
    old_completed = running_job(store, token="t1")
    finish(store, old_completed, "t1", AttemptOutcome.COMPLETED, JobState.COMPLETED, at(10))
    old_failed = running_job(store, token="t2")
    finish(store, old_failed, "t2", AttemptOutcome.FAILED, JobState.FAILED, at(10))
    old_cancelled = store.job_insert(NewJob("t.A", ""), now=T0)
    store.job_cancel(old_cancelled, now=at(10))
    recent = running_job(store, token="t3")
    finish(store, recent, "t3", AttemptOutcome.COMPLETED, JobState.COMPLETED, at(100))
    old_pending = store.job_insert(NewJob("t.A", ""), now=at(-10_000))
    old_running = running_job(store, token="t4")
    retried_long_ago = running_job(store, token="t5")  # finished long ago, then retried: pending again
    finish(store, retried_long_ago, "t5", AttemptOutcome.FAILED, JobState.FAILED, at(5))
    store.job_retry(retried_long_ago.id, RetryBudget(1), now=at(6))

    # cutoff: T0 + 60 s
    assert store.jobs_prune(60, now=at(120)) == 3
    for gone in (old_completed.id, old_failed.id, old_cancelled):
        with pytest.raises(JobNotFound):
            store.job_get(gone)
        assert store.job_attempts(gone) == []
    kept = {recent.id, old_pending, old_running.id, retried_long_ago.id}
    assert {j.id for j in store.jobs_list(JobFilter())} == kept
    assert len(store.job_attempts(recent.id)) == 1
    assert len(store.job_attempts(old_running.id)) == 1
    assert len(store.job_attempts(retried_long_ago.id)) == 1
    assert store.jobs_prune(60, now=at(120)) == 0
    assert store.jobs_prune(0, now=at(100)) == 0  # finished exactly at the cutoff: not before it
    assert store.jobs_prune(0, now=at(101)) == 1
    assert store.jobs_count_by_status() == {"pending": 2, "running": 1}


# a cancel request outlives the attempt it was made during ---------------------------------------------------


@pytest.mark.parametrize("outcome", [AttemptOutcome.RELEASED, AttemptOutcome.FAILED, AttemptOutcome.LOST])
def test_a_cancel_requested_job_ends_cancelled_instead_of_pending(store: SqlStore, outcome: AttemptOutcome) -> None:
    job = running_job(store)
    assert store.job_cancel(job.id, now=at(1)).cancel_requested
    error = None if outcome is AttemptOutcome.RELEASED else BOOM
    [done] = store.jobs_finish([Outcome(job.id, "tok-1", 1, outcome, JobState.PENDING, error=error)], now=at(2))
    assert done.recorded
    after = store.job_get(job.id)
    assert after.status is JobState.CANCELLED
    assert after.finished_at == at(2)
    assert store.jobs_claim(claim_for(token="tok-2"), 10, now=at(100)) == []


def test_a_cancel_requested_job_whose_worker_died_ends_cancelled(store: SqlStore) -> None:
    job = running_job(store)  # lease of 30 s from T0
    store.job_cancel(job.id, now=at(1))
    [rescued] = store.jobs_rescue_expired(crash_budget=5, now=at(31))
    assert rescued.job_id == job.id
    assert store.job_get(job.id).status is JobState.CANCELLED
    assert store.jobs_cancel_requested([job.id]) == []  # only running jobs are reported


def test_prune_deletes_in_short_transactions(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite a write holds the only write lock: one transaction for every old job kept heartbeats and lease
    renewals waiting for as long as it took (issue 9, item 6). Each transaction deletes PRUNE_BATCH at most."""
    monkeypatch.setattr(sql, "PRUNE_BATCH", 10)
    first = store.jobs_insert_many([NewJob("t.A", "") for _ in range(20)], now=T0)
    live = store.job_insert(NewJob("t.A", ""), now=T0)  # among them, by id: the walk steps over it
    rest = store.jobs_insert_many([NewJob("t.A", "") for _ in range(15)], now=T0)
    claimed = store.jobs_claim(Claim("w1", "t1", 30, "w1-host:1"), 100, now=T0)
    done = [Outcome(j.id, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED) for j in claimed if j.id != live]
    assert all(f.recorded for f in store.jobs_finish(done, now=at(10)))
    writes: list[int] = []

    def count_write(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("errands_write"):
            writes.append(1)

    sa.event.listen(store.engine, "commit", count_write)
    try:
        assert store.jobs_prune(60, now=at(120)) == 35
    finally:
        sa.event.remove(store.engine, "commit", count_write)
    assert len(writes) == 4  # 35 jobs, 10 at a time
    assert [j.id for j in store.jobs_list(JobFilter())] == [live]
    assert all(store.job_attempts(i) == [] for i in [*first, *rest])
