"""Conformance: a stale lease token changes nothing, on every write that ends, fails, retries, releases, renews
or rescues a running job, on every backend, whatever was read or locked before the write.

Each write names its token in its own WHERE (status = running AND lease_token = ...). The races these guard
against (a rescuer's read, then the owner's completion; a completion's check, then a rescue) can't be timed
from a test, so the writes are given the stale view such a race would leave them with.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from errands.jobs import Attempt, AttemptOutcome, Job, JobState, NewJob
from errands.store import Claim, Finished, Outcome, SqlStore

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def running_job(store: SqlStore, token: str, lease_s: float = 30.0) -> Job:
    job_id = store.job_insert(NewJob("t.A", "run"), now=at(-1))
    job = store.job_claim_by_id(job_id, Claim("w1", token, lease_s, "w1-host:1"), now=T0)
    assert job is not None
    return job


def state(store: SqlStore, job_id: int) -> tuple[Job, list[Attempt]]:
    return store.job_get(job_id), store.job_attempts(job_id)


def test_a_stale_token_in_a_batch_of_plain_completions_changes_nothing(store: SqlStore) -> None:
    mine = running_job(store, "tok-1")
    theirs = running_job(store, "tok-2")
    before = state(store, theirs.id)
    batch = [
        Outcome(mine.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="ok"),
        Outcome(theirs.id, "tok-stale", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="nope"),
    ]
    assert store.jobs_finish(batch, now=at(5)) == [Finished(mine.id, True), Finished(theirs.id, False)]
    assert store.job_get(mine.id).result == "ok"
    assert state(store, theirs.id) == before


def test_the_completions_update_is_fenced_by_itself(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite and MariaDB read which rows still carry their tokens before they update (to report them): the
    UPDATE must not rely on that read. Here the read is made to say yes to everything."""
    for module in ("sqlite", "mysql", "postgresql"):
        monkeypatch.setattr(
            f"errands.store.{module}.still_leased", lambda conn, outcomes: list(outcomes), raising=False
        )
    job = running_job(store, "tok-new")
    before = store.job_get(job.id)
    stale = Outcome(job.id, "tok-old", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="nope")
    store.jobs_finish([stale], now=at(5))
    assert store.job_get(job.id) == before


@pytest.mark.parametrize(
    ("next_state", "outcome"),
    [
        (JobState.FAILED, AttemptOutcome.FAILED),
        (JobState.PENDING, AttemptOutcome.FAILED),  # a retry
        (JobState.PENDING, AttemptOutcome.RELEASED),
        (JobState.CANCELLED, AttemptOutcome.CANCELLED),
        (JobState.FAILED, AttemptOutcome.TIMED_OUT),
    ],
)
def test_a_stale_token_fails_retries_releases_or_cancels_nothing(
    store: SqlStore, next_state: JobState, outcome: AttemptOutcome
) -> None:
    job = running_job(store, "tok-new")
    before = state(store, job.id)
    stale = Outcome(job.id, "tok-old", 1, outcome, next_state, retry_at=at(10))
    assert store.jobs_finish([stale], now=at(5)) == [Finished(job.id, recorded=False)]
    assert state(store, job.id) == before


def test_a_stale_token_renews_nothing(store: SqlStore) -> None:
    job = running_job(store, "tok-new")
    before = state(store, job.id)
    assert store.leases_renew("w1", {job.id: "tok-old"}, 300, now=at(5)) == set()
    assert state(store, job.id) == before


def _rescue_with(store: SqlStore, seen: Job, now: datetime) -> None:
    """The rescuer's write, given the expired job it read (a read the job has moved on from since)."""
    with store._tx() as conn:
        assert store._rescue(conn, [seen], crash_budget=3, now=now) == []


def test_a_rescue_leaves_a_job_its_owner_finished_since_it_looked(store: SqlStore) -> None:
    seen = running_job(store, "tok-1")  # the rescuer reads it expired...
    done = Outcome(seen.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="made it")
    assert store.jobs_finish([done], now=at(31))[0].recorded  # ...its owner completes it...
    before = state(store, seen.id)
    _rescue_with(store, seen, at(32))  # ...and the rescuer's write comes
    assert state(store, seen.id) == before


def test_a_rescue_leaves_a_job_claimed_again_since_it_looked(store: SqlStore) -> None:
    seen = running_job(store, "tok-1")
    # someone else rescued it and it was claimed again, under a new token and a lease that has expired too
    assert [r.job_id for r in store.jobs_rescue_expired(3, now=at(31))] == [seen.id]
    assert store.job_claim_by_id(seen.id, Claim("w2", "tok-2", 1.0, "w2-host:1"), now=at(32)) is not None
    before = state(store, seen.id)
    _rescue_with(store, seen, at(40))
    assert state(store, seen.id) == before


def test_a_rescue_leaves_a_lease_renewed_since_it_looked(store: SqlStore) -> None:
    seen = running_job(store, "tok-1")
    assert store.leases_renew("w1", {seen.id: "tok-1"}, 60, now=at(29)) == {seen.id}
    before = state(store, seen.id)
    _rescue_with(store, seen, at(31))
    assert state(store, seen.id) == before
