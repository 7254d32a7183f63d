"""The Store conformance suite: claiming due jobs, in order, and reserved jobs."""

from __future__ import annotations

from datetime import datetime, timedelta

from errands.jobs import Attempt, AttemptOutcome, JobState, Lease, NewJob
from errands.store import Claim, Outcome, SqlStore

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim_for(owner: str = "w1", token: str = "tok-1", lease_s: float = 30.0, queues: tuple[str, ...] = ()) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=f"{owner}-host:1", queues=queues)


def _seed_order(store: SqlStore) -> dict[str, int]:
    """Jobs whose claim order is e, c, b, a, d, n, then f once due (inserted out of that order)."""
    return {
        "a": store.job_insert(NewJob("t.A", "", priority=1, scheduled_at=at(-10)), now=at(-20)),
        "b": store.job_insert(NewJob("t.B", "", priority=5, scheduled_at=at(-1)), now=at(-20)),
        "f": store.job_insert(NewJob("t.F", "", priority=100, scheduled_at=at(0.000001)), now=at(-20)),
        "c": store.job_insert(NewJob("t.C", "", priority=5, scheduled_at=at(-5)), now=at(-20)),
        "d": store.job_insert(NewJob("t.D", "", priority=1, scheduled_at=at(-10)), now=at(-20)),
        "n": store.job_insert(NewJob("t.N", "", priority=-3, scheduled_at=at(-100)), now=at(-20)),
        "e": store.job_insert(NewJob("t.E", "", priority=10, scheduled_at=at(0)), now=at(-20)),
    }


def test_claim_order_priority_then_scheduled_then_id(store: SqlStore) -> None:
    ids = _seed_order(store)
    claimed = store.jobs_claim(claim_for(), 10, now=T0)
    assert [j.id for j in claimed] == [ids[k] for k in "ecbadn"]
    assert store.jobs_claim(claim_for(token="tok-2"), 10, now=T0) == []
    assert [j.id for j in store.jobs_claim(claim_for(token="tok-3"), 10, now=at(0.000001))] == [ids["f"]]


def test_each_claim_picks_the_next_in_order(store: SqlStore) -> None:
    ids = _seed_order(store)
    picked = []
    for n in range(7):
        batch = store.jobs_claim(claim_for(token=f"tok-{n}"), 1, now=T0)
        if not batch:
            break
        picked.append(batch[0].id)
    assert picked == [ids[k] for k in "ecbadn"]


def test_a_delayed_job_waits_until_due(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", "", delay_s=60), now=T0)
    assert store.jobs_claim(claim_for(), 10, now=T0) == []
    assert store.jobs_claim(claim_for(), 10, now=at(59.999999)) == []
    assert store.job_get(job_id).status is JobState.PENDING
    assert [j.id for j in store.jobs_claim(claim_for(), 10, now=at(60))] == [job_id]


def test_claim_filters_queues(store: SqlStore) -> None:
    a = store.job_insert(NewJob("t.A", "", queue="a"), now=T0)
    b = store.job_insert(NewJob("t.A", "", queue="b"), now=T0)
    c = store.job_insert(NewJob("t.A", "", queue="c"), now=T0)
    d = store.job_insert(NewJob("t.A", "", queue="d"), now=T0)
    assert store.jobs_claim(claim_for(queues=("zzz",)), 10, now=T0) == []
    assert sorted(j.id for j in store.jobs_claim(claim_for(queues=("a", "c")), 10, now=T0)) == [a, c]
    assert [j.id for j in store.jobs_claim(claim_for(queues=("b",)), 10, now=T0)] == [b]
    assert [j.id for j in store.jobs_claim(claim_for(queues=()), 10, now=T0)] == [d]


def test_empty_queues_claims_every_queue(store: SqlStore) -> None:
    ids = {store.job_insert(NewJob("t.A", "", queue=q), now=T0) for q in ("a", "b", "default")}
    assert {j.id for j in store.jobs_claim(claim_for(), 10, now=T0)} == ids


def test_claim_respects_limit(store: SqlStore) -> None:
    ids = store.jobs_insert_many([NewJob("t.A", str(i)) for i in range(5)], now=T0)
    assert [j.id for j in store.jobs_claim(claim_for(), 2, now=T0)] == ids[:2]
    assert [j.id for j in store.jobs_claim(claim_for(), 2, now=T0)] == ids[2:4]
    assert [j.id for j in store.jobs_claim(claim_for(), 2, now=T0)] == ids[4:]
    assert store.jobs_claim(claim_for(), 2, now=T0) == []
    assert store.jobs_count_by_status() == {"running": 5}


def test_claim_starts_an_attempt(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", "", max_attempts=4), now=at(-5))
    [job] = store.jobs_claim(claim_for(owner="w7", token="tok-7", lease_s=45.5), 1, now=T0)
    assert job == store.job_get(job_id)
    assert job.status is JobState.RUNNING
    assert job.attempts == 1
    assert job.max_attempts == 4
    assert job.started_at == T0
    assert job.finished_at is None
    assert job.cancel_requested is False
    assert job.lease == Lease("w7", "tok-7", at(45.5))
    assert store.job_attempts(job_id) == [
        Attempt(job_id, 1, T0, None, None, None, None, None, "w7-host:1"),
    ]


def test_a_second_attempt_is_numbered_two(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""), now=T0)
    store.jobs_claim(claim_for(token="tok-a"), 1, now=T0)
    retry = Outcome(job_id, "tok-a", 1, AttemptOutcome.FAILED, JobState.PENDING, retry_at=at(10))
    assert store.jobs_finish([retry], now=at(1))[0].recorded
    [job] = store.jobs_claim(claim_for(owner="w2", token="tok-b"), 1, now=at(10))
    assert job.attempts == 2
    assert job.started_at == at(10)
    assert job.lease == Lease("w2", "tok-b", at(40))
    assert [(a.number, a.worker, a.outcome) for a in store.job_attempts(job_id)] == [
        (1, "w1-host:1", AttemptOutcome.FAILED),
        (2, "w2-host:1", None),
    ]


def test_a_reserved_job_is_not_claimed_until_its_lease_expires(store: SqlStore) -> None:
    reserve = Lease("runner", "tok-r", at(60))
    job_id = store.job_insert(NewJob("t.A", ""), reserve=reserve, now=T0)
    free = store.job_insert(NewJob("t.A", ""), now=T0)
    reserved = store.job_get(job_id)
    assert reserved.status is JobState.PENDING
    assert reserved.lease == reserve

    assert [j.id for j in store.jobs_claim(claim_for(), 10, now=T0)] == [free]
    assert store.jobs_claim(claim_for(), 10, now=at(59)) == []
    assert store.job_get(job_id).status is JobState.PENDING
    [taken] = store.jobs_claim(claim_for(owner="w2", token="tok-2"), 10, now=at(61))
    assert taken.id == job_id
    assert taken.lease == Lease("w2", "tok-2", at(91))


def test_claim_by_id_takes_a_reserved_job_only_with_its_token(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", "", delay_s=3600), reserve=Lease("runner", "tok-r", at(60)), now=T0)
    assert store.job_claim_by_id(job_id, claim_for(owner="w2", token="tok-other"), now=at(1)) is None
    assert store.job_get(job_id).status is JobState.PENDING
    assert store.job_attempts(job_id) == []

    # due or not: its owner has already waited
    job = store.job_claim_by_id(job_id, claim_for(owner="runner", token="tok-r", lease_s=20), now=at(2))
    assert job is not None
    assert job == store.job_get(job_id)
    assert job.status is JobState.RUNNING
    assert job.attempts == 1
    assert job.started_at == at(2)
    assert job.lease == Lease("runner", "tok-r", at(22))
    assert store.job_attempts(job_id) == [Attempt(job_id, 1, at(2), None, None, None, None, None, "runner-host:1")]


def test_claim_by_id_takes_a_reserved_job_once_its_lease_expired(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""), reserve=Lease("runner", "tok-r", at(60)), now=T0)
    job = store.job_claim_by_id(job_id, claim_for(owner="w2", token="tok-2"), now=at(61))
    assert job is not None
    assert job.lease == Lease("w2", "tok-2", at(91))


def test_claim_by_id_takes_an_unreserved_job(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", "", delay_s=600), now=T0)
    job = store.job_claim_by_id(job_id, claim_for(), now=T0)
    assert job is not None
    assert job.status is JobState.RUNNING
    assert [a.number for a in store.job_attempts(job_id)] == [1]


def test_claim_by_id_refuses_a_job_that_is_not_pending(store: SqlStore) -> None:
    running = store.job_insert(NewJob("t.A", ""), now=T0)
    assert store.job_claim_by_id(running, claim_for(token="tok-1"), now=T0) is not None
    before = store.job_get(running)
    assert store.job_claim_by_id(running, claim_for(token="tok-1"), now=at(1)) is None
    assert store.job_claim_by_id(running, claim_for(token="tok-2"), now=at(1)) is None
    assert store.job_get(running) == before
    assert len(store.job_attempts(running)) == 1

    done = Outcome(running, "tok-1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result="ok")
    assert store.jobs_finish([done], now=at(2))[0].recorded
    assert store.job_claim_by_id(running, claim_for(token="tok-3"), now=at(3)) is None
    assert store.job_get(running).status is JobState.COMPLETED

    cancelled = store.job_insert(NewJob("t.A", ""), now=T0)
    store.job_cancel(cancelled, now=T0)
    assert store.job_claim_by_id(cancelled, claim_for(), now=at(1)) is None
    assert store.job_get(cancelled).status is JobState.CANCELLED

    assert store.job_claim_by_id(999_999, claim_for(), now=at(1)) is None
    assert store.jobs_claim(claim_for(), 10, now=at(5)) == []
