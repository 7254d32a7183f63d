"""The Store conformance suite: finishing attempts, renewing leases, rescuing expired ones (fencing)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from errands.jobs import Attempt, AttemptOutcome, ErrorInfo, FollowUp, Job, JobState, Lease, NewJob
from errands.store import Claim, Finished, JobFilter, Outcome, Rescued, SqlStore

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim_for(owner: str = "w1", token: str = "tok-1", lease_s: float = 30.0) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=f"{owner}-host:1")


def running_job(store: SqlStore, token: str = "tok-1", owner: str = "w1", max_attempts: int = 3) -> Job:
    """A job claimed at T0 by `owner` with `token` (lease until T0 + 30 s)."""
    job_id = store.job_insert(NewJob("t.A", "run", max_attempts=max_attempts), now=at(-1))
    job = store.job_claim_by_id(job_id, claim_for(owner=owner, token=token), now=T0)
    assert job is not None
    return job


BOOM = ErrorInfo("ValueError", "boom: bad value", "Traceback (most recent call last):\n  ...\nValueError: boom")


def attempt_of(store: SqlStore, job_id: int, number: int) -> Attempt:
    [attempt] = [a for a in store.job_attempts(job_id) if a.number == number]
    return attempt


# jobs_finish ------------------------------------------------------------------------------------------------


def test_finish_completed_stores_the_result(store: SqlStore) -> None:
    job = running_job(store)
    result = {"sent": 3, "ids": [1, 2, 3], "note": "é ✓", "none": None, "ok": True, "ratio": 0.5}
    done = Outcome(job.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=result)
    assert store.jobs_finish([done], now=at(5)) == [Finished(job.id, recorded=True, follow_up_ids=())]
    after = store.job_get(job.id)
    assert after.status is JobState.COMPLETED
    assert after.result == result
    assert after.finished_at == at(5)
    assert after.started_at == T0
    assert after.lease is None
    assert (after.error_type, after.error_message, after.error_traceback) == (None, None, None)
    assert after.attempts == 1
    assert store.job_attempts(job.id) == [
        Attempt(job.id, 1, T0, at(5), AttemptOutcome.COMPLETED, None, None, None, "w1-host:1")
    ]
    assert store.job_follow_ups(job.id) == []


def test_finish_completed_stores_any_json_result(store: SqlStore) -> None:
    results: list[object] = [None, 0, "", [], {}, "text", 2.25, -(2**63), [1, "a", None], {"a": {"b": [False]}}]
    jobs = [running_job(store, token=f"tok-{n}") for n in range(len(results))]
    outcomes = [
        Outcome(job.id, f"tok-{n}", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=result)
        for n, (job, result) in enumerate(zip(jobs, results, strict=True))
    ]
    assert all(f.recorded for f in store.jobs_finish(outcomes, now=at(5)))
    assert [store.job_get(job.id).result for job in jobs] == results


def test_finish_completed_inserts_follow_ups_with_parent_id(store: SqlStore) -> None:
    job = running_job(store)
    follow_ups = (
        NewJob("t.Next", "go", args=(1, {"x": [2]}), queue="later", priority=4, then=(FollowUp("t.Then", "x"),)),
        NewJob("t.Other", "", kwargs={"k": "v"}, parent_id=None, delay_s=30),
    )
    done = Outcome(job.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=follow_ups)
    [finished] = store.jobs_finish([done], now=at(5))
    assert finished.recorded
    assert len(finished.follow_up_ids) == 2
    assert store.job_follow_ups(job.id) == list(finished.follow_up_ids)
    first, second = (store.job_get(i) for i in finished.follow_up_ids)
    assert (first.target, first.method, first.args, first.queue, first.priority) == (
        "t.Next",
        "go",
        (1, {"x": [2]}),
        "later",
        4,
    )
    assert first.then == (FollowUp("t.Then", "x"),)
    assert (second.target, second.kwargs, second.then) == ("t.Other", {"k": "v"}, ())
    for child in (first, second):
        assert child.parent_id == job.id
        assert child.status is JobState.PENDING
        assert child.created_at == at(5)
        assert child.lease is None
    assert first.scheduled_at == at(5)
    assert second.scheduled_at == at(35)
    # unreserved follow-ups go to the workers
    assert [j.id for j in store.jobs_claim(claim_for(token="tok-2"), 10, now=at(5))] == [first.id]


def test_finish_completed_reserves_follow_ups_for_the_reserve_lease(store: SqlStore) -> None:
    job = running_job(store)
    reserve = Lease("runner", "tok-next", at(120))
    done = Outcome(
        job.id,
        "tok-1",
        1,
        AttemptOutcome.COMPLETED,
        JobState.COMPLETED,
        follow_ups=(NewJob("t.Next", ""),),
        reserve=reserve,
    )
    [finished] = store.jobs_finish([done], now=at(5))
    [child_id] = finished.follow_up_ids
    child = store.job_get(child_id)
    assert child.lease == reserve
    assert child.status is JobState.PENDING
    assert store.jobs_claim(claim_for(owner="w2", token="tok-2"), 10, now=at(6)) == []
    claimed = store.job_claim_by_id(child_id, claim_for(owner="runner", token="tok-next"), now=at(6))
    assert claimed is not None
    assert claimed.parent_id == job.id


def test_follow_ups_only_when_the_job_completes(store: SqlStore) -> None:
    job = running_job(store)
    failed = Outcome(
        job.id, "tok-1", 1, AttemptOutcome.FAILED, JobState.FAILED, error=BOOM, follow_ups=(NewJob("t.Next", ""),)
    )
    assert store.jobs_finish([failed], now=at(5)) == [Finished(job.id, recorded=True)]
    assert store.job_follow_ups(job.id) == []
    assert store.jobs_count_by_status() == {"failed": 1}


@pytest.mark.backends("postgresql", "mariadb")
def test_finish_and_its_follow_ups_are_one_transaction(store: SqlStore) -> None:
    """A follow-up the database refuses takes its siblings with it; the job, never left running, fails."""
    job = running_job(store)
    too_long = NewJob("t.Next", "", queue="q" * 500)  # the queue column holds 100 characters
    done = Outcome(
        job.id,
        "tok-1",
        1,
        AttemptOutcome.COMPLETED,
        JobState.COMPLETED,
        result=1,
        follow_ups=(NewJob("t.Fine", ""), too_long),
    )
    assert store.jobs_finish([done], now=at(5)) == [Finished(job.id, recorded=True)]
    failed = store.job_get(job.id)
    assert (failed.status, failed.error_type, failed.result) == (JobState.FAILED, "UnstorableOutcome", None)
    assert store.job_attempts(job.id)[0].outcome is AttemptOutcome.FAILED
    assert store.job_follow_ups(job.id) == []
    assert store.jobs_count_by_status() == {"failed": 1}


def test_finish_failed_records_the_error(store: SqlStore) -> None:
    job = running_job(store)
    failed = Outcome(job.id, "tok-1", 1, AttemptOutcome.FAILED, JobState.FAILED, error=BOOM)
    assert store.jobs_finish([failed], now=at(7)) == [Finished(job.id, recorded=True)]
    after = store.job_get(job.id)
    assert after.status is JobState.FAILED
    assert after.finished_at == at(7)
    assert (after.error_type, after.error_message, after.error_traceback) == (BOOM.type, BOOM.message, BOOM.traceback)
    assert after.result is None
    assert after.lease is None
    assert store.job_attempts(job.id) == [
        Attempt(job.id, 1, T0, at(7), AttemptOutcome.FAILED, BOOM.type, BOOM.message, BOOM.traceback, "w1-host:1")
    ]


def test_finish_timed_out(store: SqlStore) -> None:
    job = running_job(store)
    timeout = ErrorInfo("Timeout", "ran longer than 10 s")
    outcome = Outcome(job.id, "tok-1", 1, AttemptOutcome.TIMED_OUT, JobState.FAILED, error=timeout)
    assert store.jobs_finish([outcome], now=at(10))[0].recorded
    after = store.job_get(job.id)
    assert (after.status, after.error_type, after.error_traceback) == (JobState.FAILED, "Timeout", None)
    attempt = attempt_of(store, job.id, 1)
    assert (attempt.outcome, attempt.error_type, attempt.finished_at) == (AttemptOutcome.TIMED_OUT, "Timeout", at(10))


def test_finish_retry_goes_back_to_pending_at_retry_at(store: SqlStore) -> None:
    job = running_job(store)
    retry = Outcome(job.id, "tok-1", 1, AttemptOutcome.FAILED, JobState.PENDING, error=BOOM, retry_at=at(90))
    assert store.jobs_finish([retry], now=at(3)) == [Finished(job.id, recorded=True)]
    after = store.job_get(job.id)
    assert after.status is JobState.PENDING
    assert after.scheduled_at == at(90)
    assert (after.error_type, after.error_message, after.error_traceback) == (BOOM.type, BOOM.message, BOOM.traceback)
    assert after.finished_at is None
    assert after.lease is None
    assert (after.attempts, after.max_attempts, after.uncharged_attempts, after.lost_attempts) == (1, 3, 0, 0)
    attempt = attempt_of(store, job.id, 1)
    assert (attempt.outcome, attempt.finished_at, attempt.error_message) == (AttemptOutcome.FAILED, at(3), BOOM.message)

    assert store.jobs_claim(claim_for(token="tok-2"), 1, now=at(89)) == []
    [again] = store.jobs_claim(claim_for(token="tok-2"), 1, now=at(90))
    assert again.attempts == 2


def test_finish_retry_without_retry_at_is_due_now(store: SqlStore) -> None:
    job = running_job(store)
    retry = Outcome(job.id, "tok-1", 1, AttemptOutcome.FAILED, JobState.PENDING, error=BOOM)
    assert store.jobs_finish([retry], now=at(3))[0].recorded
    assert store.job_get(job.id).scheduled_at == at(3)


def test_finish_released_does_not_spend_the_budget(store: SqlStore) -> None:
    job = running_job(store, max_attempts=3)
    released = Outcome(job.id, "tok-1", 1, AttemptOutcome.RELEASED, JobState.PENDING)
    assert store.jobs_finish([released], now=at(4))[0].recorded
    after = store.job_get(job.id)
    assert after.status is JobState.PENDING
    assert (after.attempts, after.max_attempts, after.uncharged_attempts, after.lost_attempts) == (1, 4, 1, 0)
    assert after.budget == job.budget == 3
    assert after.charged_attempts == 0
    assert after.scheduled_at == at(4)
    assert after.lease is None
    attempt = attempt_of(store, job.id, 1)
    assert (attempt.outcome, attempt.finished_at, attempt.error_type) == (AttemptOutcome.RELEASED, at(4), None)


def test_finish_released_with_reserve_keeps_the_job_for_its_owner(store: SqlStore) -> None:
    job = running_job(store)
    reserve = Lease("runner", "tok-r", at(60))
    released = Outcome(job.id, "tok-1", 1, AttemptOutcome.RELEASED, JobState.PENDING, reserve=reserve)
    assert store.jobs_finish([released], now=at(4))[0].recorded
    assert store.job_get(job.id).lease == reserve
    assert store.jobs_claim(claim_for(owner="w2", token="tok-2"), 10, now=at(5)) == []
    assert store.job_claim_by_id(job.id, claim_for(owner="w2", token="tok-2"), now=at(5)) is None
    again = store.job_claim_by_id(job.id, claim_for(owner="runner", token="tok-r"), now=at(5))
    assert again is not None
    assert again.attempts == 2


def test_finish_lost_counts_a_lost_attempt(store: SqlStore) -> None:
    job = running_job(store)
    lost = ErrorInfo("WorkerLost", "the child died")
    outcome = Outcome(job.id, "tok-1", 1, AttemptOutcome.LOST, JobState.PENDING, error=lost)
    assert store.jobs_finish([outcome], now=at(4))[0].recorded
    after = store.job_get(job.id)
    assert after.status is JobState.PENDING
    assert (after.attempts, after.max_attempts, after.uncharged_attempts, after.lost_attempts) == (1, 4, 1, 1)
    assert after.budget == job.budget
    assert after.error_type == "WorkerLost"
    assert attempt_of(store, job.id, 1).outcome is AttemptOutcome.LOST


def test_finish_cancelled(store: SqlStore) -> None:
    job = running_job(store)
    store.job_cancel(job.id, now=at(1))
    outcome = Outcome(job.id, "tok-1", 1, AttemptOutcome.CANCELLED, JobState.CANCELLED)
    assert store.jobs_finish([outcome], now=at(2))[0].recorded
    after = store.job_get(job.id)
    assert after.status is JobState.CANCELLED
    assert after.finished_at == at(2)
    assert after.lease is None
    attempt = attempt_of(store, job.id, 1)
    assert (attempt.outcome, attempt.finished_at) == (AttemptOutcome.CANCELLED, at(2))


def test_a_stale_token_changes_nothing(store: SqlStore) -> None:
    job = running_job(store)
    before = store.job_get(job.id)
    attempts_before = store.job_attempts(job.id)
    for next_state, outcome in [
        (JobState.COMPLETED, AttemptOutcome.COMPLETED),
        (JobState.FAILED, AttemptOutcome.FAILED),
        (JobState.PENDING, AttemptOutcome.RELEASED),
        (JobState.PENDING, AttemptOutcome.LOST),
        (JobState.CANCELLED, AttemptOutcome.CANCELLED),
    ]:
        stale = Outcome(
            job.id,
            "tok-stale",
            1,
            outcome,
            next_state,
            result="nope",
            error=BOOM,
            follow_ups=(NewJob("t.Next", ""),),
        )
        assert store.jobs_finish([stale], now=at(5)) == [Finished(job.id, recorded=False, follow_up_ids=())]
    assert store.job_get(job.id) == before
    assert store.job_attempts(job.id) == attempts_before
    assert store.job_follow_ups(job.id) == []
    assert store.jobs_count_by_status() == {"running": 1}


def test_finishing_a_job_that_is_not_running_changes_nothing(store: SqlStore) -> None:
    job = running_job(store)
    done = Outcome(job.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="first")
    assert store.jobs_finish([done], now=at(5))[0].recorded
    finished = store.job_get(job.id)

    again = Outcome(
        job.id,
        "tok-1",
        1,
        AttemptOutcome.FAILED,
        JobState.FAILED,
        error=BOOM,
        follow_ups=(NewJob("t.Next", ""),),
    )
    assert store.jobs_finish([again], now=at(6)) == [Finished(job.id, recorded=False)]
    assert store.job_get(job.id) == finished
    assert attempt_of(store, job.id, 1).outcome is AttemptOutcome.COMPLETED
    assert store.job_follow_ups(job.id) == []

    # a reserved pending job carries a token, but isn't running
    reserved = store.job_insert(NewJob("t.A", ""), reserve=Lease("runner", "tok-r", at(60)), now=T0)
    before = store.job_get(reserved)
    outcome = Outcome(reserved, "tok-r", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=1)
    assert store.jobs_finish([outcome], now=at(6)) == [Finished(reserved, recorded=False)]
    assert store.job_get(reserved) == before
    assert store.job_attempts(reserved) == []

    missing = Outcome(999_999, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED)
    assert store.jobs_finish([missing], now=at(6)) == [Finished(999_999, recorded=False)]


def test_finish_a_batch_with_good_and_stale_outcomes(store: SqlStore) -> None:
    one = running_job(store, token="tok-1")
    two = running_job(store, token="tok-2")
    three = running_job(store, token="tok-3")
    two_before = store.job_get(two.id)
    outcomes = [
        Outcome(one.id, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=(NewJob("t.N", ""),)),
        Outcome(two.id, "tok-old", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=(NewJob("t.N", ""),)),
        Outcome(three.id, "tok-3", 1, AttemptOutcome.FAILED, JobState.FAILED, error=BOOM),
    ]
    finished = store.jobs_finish(outcomes, now=at(9))
    assert [(f.job_id, f.recorded, len(f.follow_up_ids)) for f in finished] == [
        (one.id, True, 1),
        (two.id, False, 0),
        (three.id, True, 0),
    ]
    assert store.job_get(one.id).status is JobState.COMPLETED
    assert store.job_get(two.id) == two_before
    assert store.job_get(three.id).status is JobState.FAILED
    assert store.job_follow_ups(one.id) == list(finished[0].follow_up_ids)
    assert store.job_follow_ups(two.id) == []
    assert attempt_of(store, two.id, 1).outcome is None
    assert store.jobs_finish([], now=at(9)) == []


# leases_renew -----------------------------------------------------------------------------------------------


def test_renew_extends_only_the_owners_leases_with_these_tokens(store: SqlStore) -> None:
    j1 = running_job(store, owner="w1", token="t1")
    j2 = running_job(store, owner="w1", token="t2")
    j3 = running_job(store, owner="w2", token="t3")
    j4 = store.job_insert(NewJob("t.A", ""), reserve=Lease("w1", "t4", at(30)), now=T0)
    j5 = store.job_insert(NewJob("t.A", ""), now=T0)

    held = {j1.id: "t1", j3.id: "t3", j4: "t4", j5: "nope"}
    assert store.leases_renew("w1", held, 60, now=at(10)) == {j1.id, j4}
    lease = store.job_get(j1.id).lease
    assert lease == Lease("w1", "t1", at(70))
    assert store.job_get(j4).lease == Lease("w1", "t4", at(70))
    assert store.job_get(j2.id).lease == Lease("w1", "t2", at(30))  # not in the tokens
    assert store.job_get(j3.id).lease == Lease("w2", "t3", at(30))  # someone else's
    assert store.job_get(j5).lease is None

    assert store.leases_renew("w2", {j1.id: "t1"}, 60, now=at(10)) == set()  # right token, wrong owner
    assert store.job_get(j1.id).lease == Lease("w1", "t1", at(70))
    assert store.leases_renew("w1", {j2.id: "t1"}, 60, now=at(10)) == set()  # another job of the same owner
    assert store.job_get(j2.id).lease == Lease("w1", "t2", at(30))
    assert store.leases_renew("w1", {}, 60, now=at(10)) == set()


def test_renew_skips_finished_jobs(store: SqlStore) -> None:
    job = running_job(store, token="t1")
    done = Outcome(job.id, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED)
    assert store.jobs_finish([done], now=at(5))[0].recorded
    assert store.leases_renew("w1", {job.id: "t1"}, 60, now=at(10)) == set()
    assert store.job_get(job.id).lease is None


def test_renewed_lease_is_not_rescued(store: SqlStore) -> None:
    job = running_job(store, token="t1")
    assert store.leases_renew("w1", {job.id: "t1"}, 60, now=at(25)) == {job.id}
    assert store.jobs_rescue_expired(3, now=at(40)) == []
    assert store.job_get(job.id).status is JobState.RUNNING
    assert [r.job_id for r in store.jobs_rescue_expired(3, now=at(86))] == [job.id]


def test_a_claim_slower_than_a_quarter_of_its_lease_renews_it_before_returning(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", "run"))
    lease_s = 1e-4  # any claim takes longer than a quarter of this
    [job] = store.jobs_claim(claim_for(lease_s=lease_s), 1)
    claimed_at = attempt_of(store, job_id, 1).started_at
    lease = store.job_get(job_id).lease
    assert lease is not None and lease.token == "tok-1"
    assert lease.expires_at > claimed_at + timedelta(seconds=lease_s)  # renewed after the claim's moment
    assert job.id == job_id


def test_a_slow_claims_renewal_leaves_out_jobs_rescued_meanwhile(store: SqlStore) -> None:
    ids = [store.job_insert(NewJob("t.A", "run"), now=at(-1)) for _ in range(2)]
    claim = claim_for()
    claimed = store.jobs_claim(claim, 2, now=T0)
    # the claim outlasted its lease: another worker's rescuer took one back before the renewal
    assert store.leases_renew("w1", {ids[1]: "tok-1"}, 60, now=at(10)) == {ids[1]}
    assert store.jobs_rescue_expired(3, now=at(31)) == [Rescued(ids[0], 1, failed=False)]

    kept = store._renew_slow_claim(claim, claimed)  # what jobs_claim does when the claim was slow

    assert [job.id for job in kept] == [ids[1]]
    assert store.job_get(ids[0]).status is JobState.PENDING
    assert store.job_get(ids[0]).lease is None


# jobs_rescue_expired ----------------------------------------------------------------------------------------


def test_rescue_returns_an_expired_job_to_pending(store: SqlStore) -> None:
    job = running_job(store)
    assert store.jobs_rescue_expired(3, now=at(31)) == [Rescued(job.id, 1, failed=False)]
    after = store.job_get(job.id)
    assert after.status is JobState.PENDING
    assert after.lease is None
    assert after.scheduled_at == at(31)
    assert after.finished_at is None
    assert (after.attempts, after.max_attempts, after.uncharged_attempts, after.lost_attempts) == (1, 4, 1, 1)
    assert after.budget == job.budget  # the retry budget is untouched
    assert after.error_type == "WorkerLost"
    attempt = attempt_of(store, job.id, 1)
    assert (attempt.outcome, attempt.finished_at, attempt.error_type) == (AttemptOutcome.LOST, at(31), "WorkerLost")
    # and it runs again
    [again] = store.jobs_claim(claim_for(owner="w2", token="tok-2"), 1, now=at(31))
    assert again.id == job.id
    assert again.attempts == 2
    assert store.jobs_rescue_expired(3, now=at(32)) == []


def test_rescue_fails_the_job_once_the_crash_budget_is_spent(store: SqlStore) -> None:
    job = running_job(store, max_attempts=5)
    assert store.jobs_rescue_expired(2, now=at(31)) == [Rescued(job.id, 1, failed=False)]
    assert store.job_get(job.id).lost_attempts == 1
    [again] = store.jobs_claim(claim_for(token="tok-2"), 1, now=at(40))
    assert again.attempts == 2
    assert store.jobs_rescue_expired(2, now=at(71)) == [Rescued(job.id, 2, failed=True)]
    after = store.job_get(job.id)
    assert after.status is JobState.FAILED
    assert after.error_type == "WorkerLost"
    assert after.finished_at == at(71)
    assert after.lease is None
    assert after.lost_attempts == 2
    assert [a.outcome for a in store.job_attempts(job.id)] == [AttemptOutcome.LOST, AttemptOutcome.LOST]
    assert store.jobs_claim(claim_for(token="tok-3"), 1, now=at(80)) == []


def test_rescue_with_a_crash_budget_of_one_fails_at_once(store: SqlStore) -> None:
    job = running_job(store)
    assert store.jobs_rescue_expired(1, now=at(31)) == [Rescued(job.id, 1, failed=True)]
    assert store.job_get(job.id).status is JobState.FAILED


def test_rescue_leaves_live_leases_and_other_jobs_alone(store: SqlStore) -> None:
    live = running_job(store, token="t1")
    reserved = store.job_insert(NewJob("t.A", ""), reserve=Lease("runner", "tok-r", at(5)), now=T0)
    pending = store.job_insert(NewJob("t.A", ""), now=T0)
    before = {i: store.job_get(i) for i in (live.id, reserved, pending)}
    assert store.jobs_rescue_expired(3, now=at(29)) == []
    # an expired reservation is not a running job: it simply becomes claimable again
    assert store.jobs_rescue_expired(3, now=at(10)) == []
    assert {i: store.job_get(i) for i in before} == before
    assert store.job_attempts(live.id)[0].outcome is None


def test_rescue_picks_only_the_expired_ones(store: SqlStore) -> None:
    early = running_job(store, token="t1")
    late_id = store.job_insert(NewJob("t.A", ""), now=T0)
    assert store.job_claim_by_id(late_id, claim_for(token="t2"), now=at(20)) is not None
    assert store.jobs_rescue_expired(3, now=at(31)) == [Rescued(early.id, 1, failed=False)]
    assert store.job_get(late_id).status is JobState.RUNNING


def test_after_rescue_the_old_token_is_fenced_off(store: SqlStore) -> None:
    job = running_job(store, token="tok-old")
    assert store.jobs_rescue_expired(3, now=at(31)) == [Rescued(job.id, 1, failed=False)]
    late = Outcome(job.id, "tok-old", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="late")
    assert store.jobs_finish([late], now=at(32)) == [Finished(job.id, recorded=False)]
    assert store.job_get(job.id).status is JobState.PENDING
    assert store.leases_renew("w1", {job.id: "tok-old"}, 30, now=at(32)) == set()

    [again] = store.jobs_claim(claim_for(owner="w2", token="tok-new"), 1, now=at(33))
    assert store.jobs_finish([late], now=at(34)) == [Finished(job.id, recorded=False)]
    assert store.job_get(job.id) == again
    mine = Outcome(job.id, "tok-new", 2, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="mine")
    assert store.jobs_finish([mine], now=at(35))[0].recorded
    assert store.job_get(job.id).result == "mine"
    assert [a.outcome for a in store.job_attempts(job.id)] == [AttemptOutcome.LOST, AttemptOutcome.COMPLETED]


def test_rescue_handles_many_at_once(store: SqlStore) -> None:
    jobs = [running_job(store, token=f"t{i}") for i in range(5)]
    rescued = store.jobs_rescue_expired(3, now=at(31))
    assert sorted(r.job_id for r in rescued) == [j.id for j in jobs]
    assert store.jobs_list(JobFilter(status=JobState.RUNNING)) == []


def test_one_rescue_sends_each_job_where_its_own_state_says(store: SqlStore) -> None:
    twice = running_job(store, token="t1")  # lost once already: a second loss spends a crash budget of 2
    assert store.jobs_rescue_expired(2, now=at(31)) == [Rescued(twice.id, 1, failed=False)]
    [twice] = store.jobs_claim(claim_for(token="t2"), 1, now=at(32))
    stopping = running_job(store, token="t3")
    assert store.job_cancel(stopping.id, now=at(33)).cancel_requested
    again = running_job(store, token="t4")
    live_id = store.job_insert(NewJob("t.A", ""), now=T0)
    assert store.job_claim_by_id(live_id, claim_for(token="t5"), now=at(60)) is not None

    rescued = store.jobs_rescue_expired(2, now=at(63))

    assert sorted(rescued, key=lambda r: r.job_id) == sorted(
        [Rescued(twice.id, 2, failed=True), Rescued(stopping.id, 1, failed=False), Rescued(again.id, 1, failed=False)],
        key=lambda r: r.job_id,
    )
    states = {i: store.job_get(i) for i in (twice.id, stopping.id, again.id, live_id)}
    assert (states[twice.id].status, states[twice.id].finished_at, states[twice.id].lost_attempts) == (
        JobState.FAILED,
        at(63),
        2,
    )
    assert (states[stopping.id].status, states[stopping.id].finished_at) == (JobState.CANCELLED, at(63))
    assert (states[again.id].status, states[again.id].scheduled_at, states[again.id].max_attempts) == (
        JobState.PENDING,
        at(63),
        4,
    )
    assert all(
        states[i].lease is None and states[i].error_type == "WorkerLost" for i in (twice.id, stopping.id, again.id)
    )
    assert states[live_id].status is JobState.RUNNING and states[live_id].lease is not None
    # each rescued job's current attempt is closed as lost, and no other attempt row changes
    assert [a.outcome for a in store.job_attempts(twice.id)] == [AttemptOutcome.LOST, AttemptOutcome.LOST]
    assert [a.outcome for a in store.job_attempts(stopping.id)] == [AttemptOutcome.LOST]
    assert [a.outcome for a in store.job_attempts(again.id)] == [AttemptOutcome.LOST]
    assert [a.outcome for a in store.job_attempts(live_id)] == [None]
