"""LeaseClock: which held jobs may still start, by when their leases were last known good (a stepped clock)."""

from __future__ import annotations

from errands.jobs import Job, Lease
from errands.worker.leases import LeaseClock
from factories import MOMENT, make_job

LEASE_S = 4.0  # lapsed after 4 s without news


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def held(job_id: int, token: str) -> Job:
    return make_job(id=job_id, lease=Lease("w1", token, MOMENT))


def ids(jobs: list[Job]) -> list[int]:
    return [job.id for job in jobs]


def test_a_claimed_job_is_good_until_a_lease_after_the_claim_was_asked_for() -> None:
    clock = Clock()
    leases = LeaseClock(LEASE_S, clock)
    leases.asking("a")
    clock.now += 1.0  # the claim's round trip
    jobs = [held(1, "a"), held(2, "a")]
    leases.claimed(jobs)

    clock.now += 2.9
    assert leases.lapsed(jobs) == []
    assert leases.start_by(jobs) == 104.0
    clock.now += 0.1  # 4 s after the asking, though 3 s after the jobs arrived
    assert ids(leases.lapsed(jobs)) == [1, 2]


def test_a_renewal_counts_from_when_it_was_sent_and_a_job_it_did_not_find_is_lapsed_at_once() -> None:
    clock = Clock()
    leases = LeaseClock(LEASE_S, clock)
    leases.asking("a")
    jobs = [held(1, "a"), held(2, "a")]
    leases.claimed(jobs)

    clock.now += 2.0
    leases.renewed(clock.now, asked={1: "a", 2: "a"}, renewed={1})  # 2: the rescuer took it back meanwhile
    clock.now += 0.5  # the renewal's round trip
    assert ids(leases.lapsed(jobs)) == [2]
    clock.now += 3.4
    assert ids(leases.lapsed(jobs)) == [2]
    clock.now += 0.1  # 4 s after the renewal was sent
    assert ids(leases.lapsed(jobs)) == [1, 2]


def test_a_renewal_sent_before_a_job_was_claimed_again_is_no_news_of_the_new_lease() -> None:
    clock = Clock()
    leases = LeaseClock(LEASE_S, clock)
    sent_at = clock.now  # the heartbeat asks for job 1 under its first lease...
    leases.forget(1)  # ...which ends meanwhile (its outcome was written)
    clock.now += 0.1
    leases.asking("b")
    again = [held(1, "b")]
    leases.claimed(again)  # a retry, claimed again
    leases.renewed(sent_at, asked={1: "a"}, renewed=set())  # didn't find the first lease: it had ended
    assert leases.lapsed(again) == []


def test_a_renewal_of_the_old_lease_sent_after_the_new_claim_was_asked_for_is_no_news_either() -> None:
    """The claim of a retry is asked for (its good-since moment) before a renewal that still asks for the job's
    old lease is sent; the renewal doesn't find that lease. It must not call the new attempt lost (the worker
    would stop it, a running retry) nor lapsed: the tokens tell the two leases apart. (CI: a job with
    max_attempts=2 ran a third attempt, its second stopped as 'lost'.)"""
    clock = Clock()
    leases = LeaseClock(LEASE_S, clock)
    leases.asking("a")
    leases.claimed([held(1, "a")])
    clock.now += 1.0
    leases.asking("b")  # the retry's claim is asked for...
    clock.now += 0.1
    sent_at = clock.now  # ...then the heartbeat asks for the first lease, which has just ended
    again = [held(1, "b")]
    leases.claimed(again)
    leases.renewed(sent_at, asked={1: "a"}, renewed=set())
    assert leases.take_lost() == []
    assert leases.lapsed(again) == []


def test_a_job_the_clock_never_heard_of_is_not_held_back() -> None:
    leases = LeaseClock(LEASE_S, Clock())
    assert leases.lapsed([held(7, "x")]) == []


def test_a_held_job_a_renewal_did_not_find_is_reported_lost_once() -> None:
    clock = Clock()
    leases = LeaseClock(LEASE_S, clock)
    leases.asking("a")
    leases.claimed([held(1, "a"), held(2, "a")])

    leases.renewed(clock.now, asked={1: "a", 2: "a"}, renewed={1})  # 2: rescued elsewhere, maybe running there now
    assert leases.take_lost() == [2]
    assert leases.take_lost() == []
    clock.now += 1.0
    leases.renewed(clock.now, asked={1: "a", 2: "a"}, renewed={1})  # the next renewal: no news
    assert leases.take_lost() == []


def test_the_caller_may_give_the_time() -> None:
    leases = LeaseClock(LEASE_S, Clock())  # the clock reads 100
    leases.asking("a", now=500.0)
    jobs = [held(1, "a")]
    leases.claimed(jobs, now=501.0)
    assert leases.lapsed(jobs, now=503.9) == []
    assert ids(leases.lapsed(jobs, now=504.0)) == [1]
