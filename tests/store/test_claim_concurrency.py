"""Concurrent claimers, each with its own store (connection pool) on the same database: every job is claimed
exactly once. PostgreSQL and MariaDB rely on FOR UPDATE SKIP LOCKED; SQLite on BEGIN IMMEDIATE."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import datetime, timedelta

import sqlalchemy as sa

from errands.jobs import JobState, NewJob
from errands.store import Claim, JobFilter, SqlStore
from errands.store.schema import attempts

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)
JOBS = 500
THREADS = 4
BATCH = 10


def test_every_job_is_claimed_exactly_once(store: SqlStore, db_url: str) -> None:
    ids = store.jobs_insert_many([NewJob("t.A", str(n), priority=n % 3) for n in range(JOBS)], now=T0)
    assert len(set(ids)) == JOBS

    claimed: dict[str, list[int]] = {f"w{n}": [] for n in range(THREADS)}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def claimer(owner: str) -> None:
        own = SqlStore(db_url)
        try:
            start.wait(timeout=30)
            for batch_no in range(JOBS):  # bounded: a claimer that never sees an empty batch fails the test
                claim = Claim(owner=owner, token=f"{owner}-{batch_no}", lease_s=300, worker=f"host:{owner}")
                batch = own.jobs_claim(claim, BATCH, now=T0 + timedelta(seconds=1))
                assert len(batch) <= BATCH
                if not batch:
                    return
                for job in batch:
                    assert job.status is JobState.RUNNING
                    assert job.lease is not None
                    assert job.lease.token == claim.token
                claimed[owner].extend(job.id for job in batch)
            raise AssertionError(f"{owner} never ran out of jobs")
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(owner,)) for owner in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    everything = [job_id for ids_ in claimed.values() for job_id in ids_]
    duplicates = [job_id for job_id, count in Counter(everything).items() if count > 1]
    assert duplicates == []
    assert sorted(everything) == sorted(ids)  # none missed

    # the database agrees: each job running once, with one attempt, held by the claimer that reported it
    assert store.jobs_count_by_status() == {"running": JOBS}
    running = store.jobs_list(JobFilter(status=JobState.RUNNING, limit=JOBS + 1))
    owner_of = {job_id: owner for owner, ids_ in claimed.items() for job_id in ids_}
    for job in running:
        assert job.attempts == 1
        assert job.lease is not None
        assert job.lease.owner == owner_of[job.id]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(attempts.c.job_id, attempts.c.number, attempts.c.worker)).all()
    assert sorted(row.job_id for row in rows) == sorted(ids)
    assert {row.number for row in rows} == {1}
    assert all(row.worker == f"host:{owner_of[row.job_id]}" for row in rows)


def test_concurrent_rescuers_rescue_each_job_once(store: SqlStore, db_url: str) -> None:
    ids = store.jobs_insert_many([NewJob("t.A", str(n)) for n in range(40)], now=T0)
    claim = Claim(owner="dead", token="tok-dead", lease_s=30, worker="host:dead")
    assert len(store.jobs_claim(claim, 40, now=T0)) == 40

    rescued: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def rescuer() -> None:
        own = SqlStore(db_url)
        try:
            start.wait(timeout=30)
            rescued.extend(r.job_id for r in own.jobs_rescue_expired(3, now=T0 + timedelta(seconds=31)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=rescuer) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(rescued) == sorted(ids)
    assert store.jobs_count_by_status() == {"pending": 40}
    assert {job.lost_attempts for job in store.jobs_list(JobFilter(limit=100))} == {1}
