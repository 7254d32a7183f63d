"""The rescuer, in process (no worker processes): expired leases, the crash budget, its lock, its log lines."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from errands.jobs import AttemptOutcome, JobState, NewJob
from errands.logs import JobLog
from errands.settings import Settings
from errands.store import Claim, Outcome, SqlStore
from errands.worker.maintenance import RESCUER_LOCK, rescue_once

LEASE_S = 2.0


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        database_url=db_url,
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
        lease_timeout=LEASE_S,
        rescue_interval=0.5,
        crash_budget=2,
    )


@pytest.fixture
def log(settings: Settings) -> JobLog:
    opened = JobLog(settings.log_file, settings.error_log_file)
    yield opened  # type: ignore[misc]
    opened.close()


def _claim(owner: str, token: str, lease_s: float = LEASE_S) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=f"host:{owner}")


def _running_expired(store: SqlStore, token: str = "t1", max_attempts: int = 3) -> int:
    """A job claimed long enough ago (by the database's clock) that its lease has expired."""
    t0 = store.now() - timedelta(seconds=60)
    job_id = store.job_insert(NewJob("wjobs.Job", "run", max_attempts=max_attempts), now=t0)
    [job] = store.jobs_claim(_claim("dead-worker", token), 1, now=t0)
    assert job.id == job_id and job.lease is not None
    assert job.lease.expires_at == t0 + timedelta(seconds=LEASE_S)
    return job_id


def test_store_rescue_with_an_injected_clock(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("wjobs.Job", "run"))
    t0 = store.now()
    [job] = store.jobs_claim(_claim("w", "tok"), 1, now=t0)

    assert store.jobs_rescue_expired(2, now=t0 + timedelta(seconds=LEASE_S - 0.5)) == []  # not yet expired
    assert store.job_get(job_id).status is JobState.RUNNING

    [rescued] = store.jobs_rescue_expired(2, now=t0 + timedelta(seconds=LEASE_S + 1))
    assert (rescued.job_id, rescued.attempt, rescued.failed) == (job_id, 1, False)
    after = store.job_get(job_id)
    assert (after.status, after.lease, after.lost_attempts) == (JobState.PENDING, None, 1)
    assert after.max_attempts == job.max_attempts + 1  # a lost attempt doesn't spend the retry budget
    [attempt] = store.job_attempts(job_id)
    assert (attempt.outcome, attempt.error_type) == (AttemptOutcome.LOST, "WorkerLost")
    assert attempt.finished_at == t0 + timedelta(seconds=LEASE_S + 1)


def test_rescue_once_returns_an_expired_job_to_pending_and_logs_it(
    store: SqlStore, settings: Settings, log: JobLog
) -> None:
    job_id = _running_expired(store)
    fresh = store.job_insert(NewJob("wjobs.Job", "run"))
    [live] = store.jobs_claim(_claim("live-worker", "t-live"), 1)  # a live lease: not the rescuer's business
    assert live.id == fresh

    [rescued] = rescue_once(store, settings, log, "rescuer-a")
    assert (rescued.job_id, rescued.attempt, rescued.failed) == (job_id, 1, False)
    job = store.job_get(job_id)
    assert (job.status, job.lease, job.attempts, job.lost_attempts) == (JobState.PENDING, None, 1, 1)
    assert job.error_type == "WorkerLost"
    assert [a.outcome for a in store.job_attempts(job_id)] == [AttemptOutcome.LOST]
    assert store.job_get(fresh).status is JobState.RUNNING

    line = f"job={job_id} attempt=1 Job {job_id} attempt 1 lost (lease expired): back to pending"
    assert line in settings.log_file.read_text()
    assert line in settings.error_log_file.read_text()

    # the dead worker's late report is fenced off
    late = Outcome(job_id, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=1)
    assert [f.recorded for f in store.jobs_finish([late])] == [False]
    assert store.job_get(job_id) == job


def test_rescue_fails_the_job_once_the_crash_budget_is_spent(store: SqlStore, settings: Settings, log: JobLog) -> None:
    job_id = _running_expired(store, token="t1")
    assert [r.failed for r in rescue_once(store, settings, log, "rescuer-a")] == [False]
    # claimed again now (it was returned due now), under a lease that is already over
    [again] = store.jobs_claim(_claim("dead-again", "t2", lease_s=-30), 1)
    assert again.id == job_id and again.attempts == 2

    [rescued] = rescue_once(store, settings, log, "rescuer-a")
    assert (rescued.job_id, rescued.attempt, rescued.failed) == (job_id, 2, True)
    job = store.job_get(job_id)
    assert (job.status, job.lost_attempts, job.error_type) == (JobState.FAILED, 2, "WorkerLost")
    assert job.finished_at is not None
    assert [a.outcome for a in store.job_attempts(job_id)] == [AttemptOutcome.LOST, AttemptOutcome.LOST]
    assert f"Job {job_id} failed after 2 attempts: worker lost" in settings.error_log_file.read_text()
    assert rescue_once(store, settings, log, "rescuer-a") == []  # nothing left to do


def test_the_rescuer_lock_keeps_a_second_rescuer_out(store: SqlStore, settings: Settings, log: JobLog) -> None:
    job_id = _running_expired(store)
    assert store.lock_acquire(RESCUER_LOCK, "rescuer-b", ttl_s=60)

    assert rescue_once(store, settings, log, "rescuer-a") == []  # skipped: b holds the lock
    assert store.job_get(job_id).status is JobState.RUNNING
    assert not settings.log_file.exists() or "lost" not in settings.log_file.read_text()

    [rescued] = rescue_once(store, settings, log, "rescuer-b")  # the holder renews and rescues
    assert rescued.job_id == job_id
    assert store.job_get(job_id).status is JobState.PENDING


def test_the_rescuer_lock_passes_on_once_it_expires(store: SqlStore, settings: Settings, log: JobLog) -> None:
    past = store.now() - timedelta(seconds=120)
    assert store.lock_acquire(RESCUER_LOCK, "rescuer-b", ttl_s=5, now=past)  # b died long ago
    job_id = _running_expired(store)
    [rescued] = rescue_once(store, settings, log, "rescuer-a")
    assert rescued.job_id == job_id
    assert not store.lock_acquire(RESCUER_LOCK, "rescuer-b", ttl_s=5)  # a holds it now


def test_concurrent_rescuers_rescue_each_job_once(db_url: str, settings: Settings, log: JobLog) -> None:
    stores = [SqlStore(db_url) for _ in range(4)]
    try:
        job_ids = [_running_expired(stores[0], token=f"t{i}") for i in range(5)]
        results: list[list[int]] = []
        start = threading.Barrier(len(stores))

        def rescuer(n: int) -> None:
            start.wait()
            results.append([r.job_id for r in rescue_once(stores[n], settings, log, f"rescuer-{n}")])

        threads = [threading.Thread(target=rescuer, args=(n,)) for n in range(len(stores))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert len(results) == len(stores)
        rescued = sorted(i for found in results for i in found)
        assert rescued == job_ids  # each once, by whichever rescuer held the lock
        assert sum(1 for found in results if found) == 1
        for job_id in job_ids:
            assert [a.outcome for a in stores[0].job_attempts(job_id)] == [AttemptOutcome.LOST]
            assert stores[0].job_get(job_id).lost_attempts == 1
    finally:
        for opened in stores:
            opened.close()
