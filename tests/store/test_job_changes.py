"""Job changes for the event stream (issue 11 item 6): every write that changes a job's status or cancel request
shows in jobs_changed_since, on every backend; PostgreSQL also NOTIFYs errands_changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa

from errands.errors import StoreError
from errands.jobs import AttemptOutcome, ErrorInfo, FollowUp, Job, JobState, NewJob
from errands.store import Claim, Outcome, SqlStore
from errands.store.notify import CHANGES_CHANNEL

T = TypeVar("T")


def claim_for(token: str, lease_s: float = 30.0) -> Claim:
    return Claim(owner="w1", token=token, lease_s=lease_s, worker="host:1")


def changed(store: SqlStore, since: datetime) -> dict[int, Job]:
    return {change.job.id: change.job for change in store.jobs_changed_since(since, 1000)}


def states(store: SqlStore, since: datetime) -> dict[int, str]:
    return {job_id: job.status.value for job_id, job in changed(store, since).items()}


def test_every_kind_of_change_is_in_jobs_changed_since(store: SqlStore) -> None:
    since = store.now()
    a = store.job_insert(NewJob("t.A", ""))
    assert states(store, since) == {a: "pending"}

    since = store.now()
    b, c = store.jobs_insert_many([NewJob("t.A", ""), NewJob("t.A", "")])
    assert states(store, since) == {b: "pending", c: "pending"}

    since = store.now()
    claimed = store.jobs_claim(claim_for("t1"), 2)
    assert {job.id for job in claimed} == {a, b}
    assert states(store, since) == {a: "running", b: "running"}

    since = store.now()  # a plain completion (each driver's own statement) and a retry, in one batch
    error = ErrorInfo("ValueError", "no")
    store.jobs_finish(
        [
            Outcome(a, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=1),
            Outcome(b, "t1", 1, AttemptOutcome.FAILED, JobState.PENDING, error=error, retry_in_s=0),
        ]
    )
    assert states(store, since) == {a: "completed", b: "pending"}

    since = store.now()
    assert store.job_claim_by_id(b, claim_for("t2")) is not None
    assert states(store, since) == {b: "running"}

    since = store.now()
    store.job_cancel(b)  # running: a cancel request
    assert changed(store, since)[b].cancel_requested

    since = store.now()
    store.jobs_finish([Outcome(b, "t2", 2, AttemptOutcome.FAILED, JobState.FAILED, error=error)])
    assert states(store, since) == {b: "failed"}

    since = store.now()
    store.job_retry(b, budget_of(1))
    assert states(store, since) == {b: "pending"}

    since = store.now()
    store.job_cancel(b)  # pending: cancelled at once
    assert states(store, since) == {b: "cancelled"}

    store.jobs_claim(claim_for("t3", lease_s=1), 1)  # c
    since = store.now()
    store.jobs_rescue_expired(3, now=store.now() + timedelta(seconds=60))
    assert states(store, since) == {c: "pending"}


def test_a_completion_with_follow_ups_shows_both(store: SqlStore) -> None:
    parent = store.job_insert(NewJob("t.A", "", then=(FollowUp("t.B", ""),)))
    store.jobs_claim(claim_for("t1"), 1)
    since = store.now()
    follow_up = NewJob("t.B", "")
    [done] = store.jobs_finish(
        [Outcome(parent, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, follow_ups=(follow_up,))]
    )
    assert states(store, since) == {parent: "completed", done.follow_up_ids[0]: "pending"}


def test_a_released_job_is_a_change(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""))
    store.jobs_claim(claim_for("t1"), 1)
    since = store.now()
    store.jobs_finish([Outcome(job_id, "t1", 1, AttemptOutcome.RELEASED, JobState.PENDING)])
    assert states(store, since) == {job_id: "pending"}


def test_a_renewal_is_no_change(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("t.A", ""))
    store.jobs_claim(claim_for("t1"), 1)
    since = store.now()
    assert store.leases_renew("w1", {job_id: "t1"}, 60) == {job_id}
    assert states(store, since) == {}


def test_changes_come_in_order_and_page_by_keyset(store: SqlStore) -> None:
    t0 = store.now()
    at = [t0 + timedelta(seconds=s) for s in (3, 1, 1, 2)]
    ids = [store.job_insert(NewJob("t.A", ""), now=moment) for moment in at]
    everything = store.jobs_changed_since(t0, 10)
    assert [c.job.id for c in everything] == [ids[1], ids[2], ids[3], ids[0]]
    assert [c.changed_at for c in everything] == sorted(at)
    first = store.jobs_changed_since(t0, 2)
    assert [c.job.id for c in first] == [ids[1], ids[2]]
    rest = store.jobs_changed_since(first[-1].changed_at, 10, after_id=first[-1].job.id)
    assert [c.job.id for c in rest] == [ids[3], ids[0]]
    assert store.jobs_changed_since(at[0] + timedelta(microseconds=1), 10) == []


def budget_of(attempts: int) -> object:
    from errands.store import RetryBudget

    return RetryBudget(attempts)


# PostgreSQL: NOTIFY errands_changes ------------------------------------------------------------------------


class Notes:
    def __init__(self) -> None:
        self.got: list[tuple[str, str]] = []
        self._cond = threading.Condition()

    def __call__(self, channel: str, payload: str) -> None:
        with self._cond:
            self.got.append((channel, payload))
            self._cond.notify_all()

    def wait_for_more(self, than: int, timeout: float = 10.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.got) > than, timeout), self.got


@pytest.mark.backends("postgresql")
def test_postgresql_notifies_errands_changes_once_per_write(store: SqlStore, db_url: str) -> None:
    notes = Notes()
    listener = store.listen_changes(notes)
    assert listener is not None
    other = SqlStore(db_url)  # another process's writes
    try:
        writes = [
            lambda: other.job_insert(NewJob("t.A", "")),  # the one-statement insert
            lambda: other.jobs_insert_many([NewJob("t.A", "")] * 3),  # COPY
            lambda: other.jobs_claim(claim_for("t1"), 10),  # the one-statement claim of 4 jobs
            lambda: other.jobs_finish(  # the one-statement completions
                [Outcome(j.id, "t1", 1, AttemptOutcome.COMPLETED, JobState.COMPLETED) for j in running(other)]
            ),
        ]
        for write in writes:
            before = len(notes.got)
            write()
            notes.wait_for_more(before)
        # every write above is one notification (a batch is one): nothing more arrives after a round trip
        marker = len(notes.got)
        other.job_insert(NewJob("t.A", ""))
        notes.wait_for_more(marker)
        assert notes.got == [(CHANGES_CHANNEL, "")] * (marker + 1)
        before = len(notes.got)
        assert other.jobs_claim(Claim("w2", "t2", 30, "h:2", queues=("nothing-here",)), 5) == []
        other.job_insert(NewJob("t.A", ""))
        notes.wait_for_more(before)
        assert len(notes.got) == before + 1  # the empty claim told nothing
    finally:
        listener.stop()
        other.close()


def running(store: SqlStore) -> list[Job]:
    from errands.store import JobFilter

    return store.jobs_list(JobFilter(status=JobState.RUNNING))


@pytest.mark.backends("sqlite", "mariadb")
def test_without_notify_the_caller_polls(store: SqlStore) -> None:
    assert store.listen_changes(Notes()) is None


# not SQLite: it has one writer, so a later change can't commit before an earlier one
@pytest.mark.backends("postgresql", "mariadb")
def test_a_late_commit_of_another_process_is_not_lost_to_a_change_feed(store: SqlStore, db_url: str) -> None:
    """The overlap ChangeFeed re-reads: a transaction whose changed_at is older than changes committed before it."""
    from errands.changes import ChangeFeed

    feed = ChangeFeed(lambda since, n, after: store.jobs_changed_since(since, n, after_id=after), store.now())
    early, late = store.job_insert(NewJob("t.A", "")), store.job_insert(NewJob("t.A", ""))
    assert [c.job.id for c in feed.poll()] == [early, late]
    slow = SqlStore(db_url)
    try:
        with slow.engine.connect() as conn, conn.begin():  # its changed_at is taken now, its commit comes later
            clock = "now() AT TIME ZONE 'UTC'" if store.dialect == "postgresql" else "UTC_TIMESTAMP(6)"
            conn.execute(
                sa.text(f"UPDATE errands_jobs SET status = 'cancelled', changed_at = {clock} WHERE id = :id"),
                {"id": early},
            )
            read = sa.text("SELECT changed_at FROM errands_jobs WHERE id = :id")
            held_at = conn.execute(read, {"id": early}).scalar()
            store.job_cancel(late)  # commits first, with a later changed_at
            seen = feed.poll()
            assert [c.job.id for c in seen] == [late] and seen[0].changed_at > held_at
        assert [(c.job.id, c.job.status) for c in feed.poll()] == [(early, JobState.CANCELLED)]
        assert feed.poll() == []
    finally:
        slow.close()


def again(write: Callable[[], T]) -> T:
    """A write retried after a deadlock, as the worker does (MariaDB's concurrent claims and inserts hit them)."""
    for _ in range(9):
        try:
            return write()
        except StoreError as exc:
            if "Deadlock" not in str(exc):
                raise
    return write()


def test_a_change_feed_misses_no_change_of_concurrent_writers(store: SqlStore, db_url: str) -> None:
    """Writers insert, claim and finish jobs on their own connections while a reader polls: every job's last
    change (its final row) reaches the feed."""
    from errands.changes import ChangeFeed

    feed = ChangeFeed(lambda since, n, after: store.jobs_changed_since(since, n, after_id=after), store.now(), page=7)
    stop = threading.Event()
    failures: list[BaseException] = []

    def writer(number: int) -> None:
        mine = SqlStore(db_url)
        try:
            for round_ in range(15):
                ids = again(lambda: mine.jobs_insert_many([NewJob("t.A", "", queue=f"q{number}")] * 3))
                token = f"w{number}-{round_}"
                claim = Claim(f"w{number}", token, 30, "h:1", queues=(f"q{number}",))
                claimed = again(lambda: mine.jobs_claim(claim, 2))  # noqa: B023 (called at once)
                outcomes = [Outcome(j.id, token, 1, AttemptOutcome.COMPLETED, JobState.COMPLETED) for j in claimed]
                again(lambda: mine.jobs_finish(outcomes[:1]))  # noqa: B023
                again(lambda: mine.job_cancel(ids[-1]))  # noqa: B023
        except BaseException as exc:
            failures.append(exc)
        finally:
            mine.close()

    delivered: dict[tuple[int, datetime], JobState] = {}

    def reader() -> None:
        while not stop.is_set():
            for change in feed.poll():
                delivered[(change.job.id, change.changed_at)] = change.job.status

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    polling = threading.Thread(target=reader)
    polling.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    polling.join()
    for change in feed.poll():
        delivered[(change.job.id, change.changed_at)] = change.job.status
    assert not failures
    final = store.jobs_changed_since(datetime(2000, 1, 1), 1000)
    assert len(final) == 3 * 15 * 3
    missing = [(c.job.id, c.changed_at) for c in final if (c.job.id, c.changed_at) not in delivered]
    assert missing == []
    assert all(delivered[(c.job.id, c.changed_at)] is c.job.status for c in final)
