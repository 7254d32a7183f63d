"""The Store's reports section on every backend: search filters and keyset pages, capped counts, stats,
failure groups, queues and their pauses, cancel and retry batches (under the TRANSITIONS guard of
tests/store/conftest.py), bulk run rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from errands.errors import BulkRunNotFound
from errands.jobs import AttemptOutcome, ErrorInfo, Job, JobState, NewJob
from errands.reports import Count, JobSearch
from errands.store import Claim, Outcome, SqlStore
from errands.store.schema import queues

T0 = datetime(2026, 3, 1, 12, 0, 0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


CLAIM = Claim(owner="w1", token="tok-1", lease_s=300.0, worker="host:1")


def insert(store: SqlStore, target: str = "app.Jobs", when: float = 0, **fields: object) -> int:
    return store.job_insert(NewJob(target, "run", **fields), now=at(when))  # type: ignore[arg-type]


def run(store: SqlStore, job_id: int, when: float) -> Job:
    job = store.job_claim_by_id(job_id, CLAIM, now=at(when))
    assert job is not None
    return job


def end(store: SqlStore, job_id: int, state: JobState, when: float, error: ErrorInfo | None = None) -> None:
    job = run(store, job_id, when)
    outcome = AttemptOutcome.COMPLETED if state is JobState.COMPLETED else AttemptOutcome.FAILED
    done = store.jobs_finish([Outcome(job.id, CLAIM.token, job.attempts, outcome, state, error=error)], now=at(when))
    assert done[0].recorded


def ids(store: SqlStore, **search: object) -> list[int]:
    return [job.id for job in store.jobs_search(JobSearch(limit=500, **search)).jobs]  # type: ignore[arg-type]


# search ---------------------------------------------------------------------------------------------------


def test_each_filter(store: SqlStore) -> None:
    mail = insert(store, "app.Mail", queue="mail", kwargs={"customer_id": 42, "tags": ["a", "b"]}, args=(1, "x"))
    report = insert(store, "app.Report", when=10, kwargs={"customer_id": 7}, args=(42, [1, 2]))
    child = insert(store, "app.Report", when=20, parent_id=mail, args=({"k": True},))
    broken = insert(store, "app.Other", when=30, args=(1.0,))
    end(store, broken, JobState.FAILED, 31, ErrorInfo("ValueError", "Customer NOT found: 42%_"))

    assert ids(store) == [broken, child, report, mail]
    assert ids(store, statuses=(JobState.FAILED,)) == [broken]
    assert ids(store, statuses=(JobState.FAILED, JobState.PENDING)) == [broken, child, report, mail]
    assert ids(store, queue="mail") == [mail]
    assert ids(store, target="app.Report") == [child, report]
    if store.dialect != "mysql":  # (MariaDB's collation of the column ignores case: noted, left as it is)
        assert ids(store, target="app.report") == []  # exact
    assert ids(store, text="REPORT") == [child, report]  # the target, case-insensitively
    assert ids(store, text="customer not") == [broken]  # or the error message
    assert ids(store, text="42%_") == [broken]  # LIKE's wildcards are plain text
    assert ids(store, text="%") == [broken]
    assert ids(store, args={"customer_id": 42}) == [mail]  # an object: in the keyword arguments
    assert ids(store, args={"tags": ["b"]}) == [mail]  # contained, nested
    assert ids(store, args={"customer_id": "42"}) == []  # types count
    assert ids(store, args=42) == [report]  # another value: among the positional arguments
    # 1 and 1.0 are one number; MariaDB's JSON_CONTAINS also finds a value in a nested array of the arguments
    assert ids(store, args=1) == ([broken, report, mail] if store.dialect == "mysql" else [broken, mail])
    assert ids(store, args=[1, "x"]) == [mail]  # a list: each of its values
    assert ids(store, args=[[2]]) == [report]
    assert ids(store, args={"k": True}) == []  # an object is never looked for in the positional arguments
    assert ids(store, args=[{"k": True}]) == [child]
    assert ids(store, args=True) == []  # true is no 1
    assert ids(store, args=[]) == [broken, child, report, mail]  # contained in every list
    assert ids(store, created_after=at(10)) == [broken, child, report]
    assert ids(store, created_before=at(10)) == [mail]
    assert ids(store, created_after=at(5), created_before=at(25)) == [child, report]
    assert ids(store, parent_id=mail) == [child]
    assert ids(store, before_id=report) == [mail]
    assert ids(store, target="app.Report", args=[{"k": True}], queue="default") == [child]


def test_keyset_pages_reach_every_row_exactly_once(store: SqlStore) -> None:
    made = store.jobs_insert_many([NewJob("app.Jobs", "run", args=(i % 3,)) for i in range(23)], now=T0)
    for search in (JobSearch(limit=5), JobSearch(limit=4, args=0), JobSearch(limit=1, target="app.Jobs")):
        seen: list[int] = []
        page = store.jobs_search(search)
        while True:
            seen.extend(job.id for job in page.jobs)
            if page.next_before_id is None:
                break
            assert page.next_before_id == page.jobs[-1].id
            page = store.jobs_search(replace(search, before_id=page.next_before_id))
        wanted = [i for n, i in enumerate(made) if search.args is None or n % 3 == 0]
        assert seen == sorted(wanted, reverse=True)


def test_a_full_last_page_says_there_is_no_older_one(store: SqlStore) -> None:
    made = [insert(store) for _ in range(4)]
    page = store.jobs_search(JobSearch(limit=2, before_id=made[2]))
    assert [job.id for job in page.jobs] == [made[1], made[0]]
    assert page.next_before_id is None


def test_count_is_capped(store: SqlStore) -> None:
    store.jobs_insert_many([NewJob("app.Jobs", "run", queue="q") for _ in range(12)], now=T0)
    insert(store, "app.Other")
    assert store.jobs_count(JobSearch(), cap=100) == Count(13, exact=True)
    assert store.jobs_count(JobSearch(queue="q"), cap=12) == Count(12, exact=True)
    assert store.jobs_count(JobSearch(queue="q"), cap=11) == Count(11, exact=False)
    assert store.jobs_count(JobSearch(target="app.Other", limit=1), cap=5) == Count(1, exact=True)
    assert store.jobs_count(JobSearch(target="nothing"), cap=5) == Count(0, exact=True)


# stats, groups, queues --------------------------------------------------------------------------------------


def test_stats(store: SqlStore) -> None:
    now = datetime(2026, 3, 1, 13, 0, 30)
    done = [insert(store, queue="a") for _ in range(3)]
    for n, job_id in enumerate(done):
        end(store, job_id, JobState.COMPLETED, 3600 - 60 * n)  # 13:00, 12:59, 12:58
    failed = insert(store, queue="b")
    end(store, failed, JobState.FAILED, 3600, ErrorInfo("E", "boom"))
    old = insert(store, queue="a", when=-7200)
    end(store, old, JobState.COMPLETED, -7000)  # before the hour: not in the figures
    insert(store, queue="a", when=100)  # due since 12:01:40
    insert(store, queue="a", when=50, delay_s=99_999)  # not due
    insert(store, queue="b", when=200)
    running = insert(store, queue="b", when=300)
    run(store, running, 3000)

    stats = store.jobs_stats(now=now)

    assert stats.by_status == {
        "pending": Count(3, True),
        "running": Count(1, True),
        "completed": Count(4, True),  # exact: this table was never analyzed (PostgreSQL estimates it then)
        "failed": Count(1, True),
        "cancelled": Count(0, True),
    }
    assert stats.by_queue == {
        "a": {"pending": Count(2, True)},
        "b": {"pending": Count(1, True), "running": Count(1, True), "failed": Count(1, True)},
    }
    assert len(stats.per_minute) == 60
    assert stats.per_minute[0].minute == datetime(2026, 3, 1, 12, 1)
    assert stats.per_minute[-1].minute == datetime(2026, 3, 1, 13, 0)
    figures = {m.minute: (m.completed, m.failed) for m in stats.per_minute if m.completed or m.failed}
    assert figures == {
        datetime(2026, 3, 1, 13, 0): (1, 1),
        datetime(2026, 3, 1, 12, 59): (1, 0),
        datetime(2026, 3, 1, 12, 58): (1, 0),
    }
    assert stats.oldest_due == {"a": at(100), "b": at(200)}


@pytest.mark.backends("postgresql")
def test_the_completed_count_is_an_estimate_once_analyzed(store: SqlStore) -> None:
    made = store.jobs_insert_many([NewJob("app.Jobs", "run") for _ in range(40)], now=T0)
    for job_id in made[:30]:
        end(store, job_id, JobState.COMPLETED, 10)
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE errands_jobs"))
    stats = store.jobs_stats(now=at(20))
    assert stats.by_status["pending"] == Count(10, True)
    assert stats.by_status["completed"] == Count(30, exact=False)


def test_failure_groups(store: SqlStore) -> None:
    def fail(target: str, error: str, when: float, message: str = "m") -> int:
        job_id = insert(store, target, when=when)
        end(store, job_id, JobState.FAILED, when + 1, ErrorInfo(error, message))
        return job_id

    fail("app.A", "KeyError", 0)
    fail("app.A", "KeyError", 10)
    newest_a = fail("app.A", "KeyError", 20, "the newest")
    other = fail("app.A", "ValueError", 30)
    b = fail("app.B", "KeyError", 40)
    end(store, insert(store, "app.A"), JobState.COMPLETED, 50)

    groups = store.failure_groups(limit=10)
    assert [(g.error_type, g.target, g.count) for g in groups] == [
        ("KeyError", "app.A", 3),
        ("KeyError", "app.B", 1),
        ("ValueError", "app.A", 1),
    ]
    first = groups[0]
    assert (first.method, first.first_at, first.last_at) == ("run", at(1), at(21))
    assert (first.sample_job_id, first.sample_message) == (newest_a, "the newest")
    assert [g.sample_job_id for g in groups[1:]] == [b, other]
    assert len(store.failure_groups(limit=1)) == 1


def test_queues_pause_and_resume(store: SqlStore) -> None:
    now = at(1000)
    insert(store, queue="mail", when=0)
    insert(store, queue="mail", when=10)
    insert(store, queue="mail", when=0, delay_s=5000)
    end(store, insert(store, queue="done"), JobState.COMPLETED, 5)  # only finished jobs: still a queue
    run(store, insert(store, queue="busy"), 20)

    assert store.queues_paused() == frozenset()
    listed = {q.name: q for q in store.queues_info(now=now)}
    assert sorted(listed) == ["busy", "done", "mail"]
    mail = listed["mail"]
    assert (mail.paused, mail.pending, mail.due, mail.running) == (False, 3, 2, 0)
    assert (mail.oldest_due_at, mail.oldest_due_age_s) == (at(0), 1000.0)
    assert (listed["busy"].running, listed["busy"].oldest_due_at, listed["busy"].oldest_due_age_s) == (1, None, 0.0)

    paused = store.queue_set_paused("mail", True, "alice", now=now)
    assert (paused.name, paused.paused, paused.pending) == ("mail", True, 3)
    empty = store.queue_set_paused("nothing-yet", True, "bob", now=now)  # a queue without jobs may be paused
    assert (empty.paused, empty.pending, empty.due) == (True, 0, 0)
    assert store.queues_paused() == {"mail", "nothing-yet"}
    assert [q.name for q in store.queues_info(now=now)] == ["busy", "done", "mail", "nothing-yet"]
    assert store.queue_set_paused("mail", False, "alice", now=now).paused is False
    assert store.queues_paused() == {"nothing-yet"}
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(queues.c.changed_by, queues.c.changed_at).where(queues.c.name == "mail")).one()
    assert tuple(row) == ("alice", now)


def test_a_claim_excludes_the_queues_it_is_told(store: SqlStore) -> None:
    mail = insert(store, queue="mail")
    other = insert(store, queue="other")
    third = insert(store, queue="third")
    claim = replace(CLAIM, exclude=("mail", "third"))
    assert [job.id for job in store.jobs_claim(claim, 10, now=at(1))] == [other]
    assert [
        job.id for job in store.jobs_claim(replace(claim, queues=("mail", "third"), exclude=("mail",)), 10, now=at(1))
    ] == [third]
    assert [job.id for job in store.jobs_claim(CLAIM, 10, now=at(1))] == [mail]


# batches and bulk runs --------------------------------------------------------------------------------------


def test_cancel_batch_follows_job_cancels_rules(store: SqlStore) -> None:
    pending = insert(store)
    running = insert(store)
    run(store, running, 1)
    done = insert(store)
    end(store, done, JobState.COMPLETED, 2)
    failed = insert(store)
    end(store, failed, JobState.FAILED, 3, ErrorInfo("E", "x"))

    result = store.jobs_cancel_batch([pending, running, done, failed, 999_999, pending], now=at(10))

    assert (result.acted, result.skipped) == (2, 3)  # the duplicate counts once; a job gone is skipped
    assert store.job_get(pending).status is JobState.CANCELLED
    assert store.job_get(pending).finished_at == at(10)
    assert store.job_get(running).status is JobState.RUNNING
    assert store.job_get(running).cancel_requested is True
    assert store.jobs_cancel_requested([running]) == [running]
    assert store.job_get(done).status is JobState.COMPLETED
    assert store.job_get(failed).status is JobState.FAILED
    assert store.jobs_cancel_batch([], now=at(11)) == store.jobs_cancel_batch([], now=at(11))


def test_retry_batch_follows_job_retrys_rules(store: SqlStore) -> None:
    failed = insert(store, max_attempts=1)
    end(store, failed, JobState.FAILED, 1, ErrorInfo("E", "x"))
    pinned = insert(store, max_attempts=2, attempts_pinned=True)
    end(store, pinned, JobState.PENDING, 2, ErrorInfo("E", "x"))  # a retry: pending, 1 attempt spent
    end(store, pinned, JobState.FAILED, 3, ErrorInfo("E", "x"))
    cancelled = insert(store)
    store.job_cancel(cancelled, now=at(4))
    pending = insert(store)
    done = insert(store)
    end(store, done, JobState.COMPLETED, 5)

    result = store.jobs_retry_batch([failed, pinned, cancelled, pending, done], default_budget=4, now=at(10))

    assert (result.acted, result.skipped) == (3, 2)
    again = store.job_get(failed)
    assert (again.status, again.attempts, again.max_attempts, again.budget) == (JobState.PENDING, 1, 5, 4)
    assert (again.scheduled_at, again.finished_at, again.error_type) == (at(10), None, "E")
    pinned_again = store.job_get(pinned)  # its own budget, as job_retry gives it
    assert (pinned_again.attempts, pinned_again.max_attempts, pinned_again.budget) == (2, 4, 2)
    assert store.job_get(cancelled).status is JobState.PENDING
    assert store.job_get(pending).status is JobState.PENDING
    assert store.job_get(done).status is JobState.COMPLETED


def test_bulk_run_rows(store: SqlStore) -> None:
    made = store.bulk_run_insert("cancel", {"status": ["pending"]}, "alice", now=T0)
    assert (made.action, made.search, made.status, made.created_by) == (
        "cancel",
        {"status": ["pending"]},
        "running",
        "alice",
    )
    assert (made.total, made.done, made.skipped, made.created_at, made.finished_at) == (0, 0, 0, T0, None)
    store.bulk_run_progress(made.id, total=700, now=at(1))
    store.bulk_run_progress(made.id, done=500, now=at(2))
    store.bulk_run_progress(made.id, done=150, skipped=50, now=at(3))
    got = store.bulk_run_get(made.id, stale_after_s=60, now=at(4))
    assert (got.status, got.total, got.done, got.skipped) == ("running", 700, 650, 50)
    store.bulk_run_finish(made.id, now=at(5))
    got = store.bulk_run_get(made.id, stale_after_s=60, now=at(500))
    assert (got.status, got.finished_at, got.error) == ("done", at(5), None)

    failing = store.bulk_run_insert("retry", {}, "bob", now=T0)
    store.bulk_run_finish(failing.id, "StoreError: gone", now=at(1))
    assert store.bulk_run_get(failing.id, stale_after_s=60, now=at(2)).error == "StoreError: gone"

    abandoned = store.bulk_run_insert("retry", {}, "bob", now=T0)
    assert store.bulk_run_get(abandoned.id, stale_after_s=60, now=at(59)).status == "running"
    lost = store.bulk_run_get(abandoned.id, stale_after_s=60, now=at(61))
    assert (lost.status, lost.finished_at) == ("failed", at(61))
    assert lost.error is not None and "abandoned" in lost.error
    with pytest.raises(BulkRunNotFound):
        store.bulk_run_get(123_456, stale_after_s=60)
