"""The Store conformance suite: creating and reading jobs, on every backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from errands.clock import utc_now
from errands.errors import JobNotFound
from errands.jobs import AttemptOutcome, ErrorInfo, FollowUp, Job, JobState, Lease, NewJob
from errands.store import Claim, JobFilter, Outcome, SqlStore

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claim_for(owner: str = "w1", token: str = "tok-1", lease_s: float = 30.0) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=f"{owner}-host:1")


ARGS = (
    1,
    -2.5,
    "two",
    True,
    False,
    None,
    2**63 + 1,
    [1, [2, 3], {"a": None}],
    {"nested": {"x": 1.25, "list": [True, "é ✓"]}},
    "",
)
KWARGS = {"to": "a@example.org", "n": 3, "ratio": 0.1, "flags": [True, False], "none": None, "text": "héllo ✓\n"}


def test_insert_get_round_trips_every_field(store: SqlStore) -> None:
    parent_id = store.job_insert(NewJob("app.tasks.Parent", ""), now=T0)
    then = (
        FollowUp("app.tasks.Next", "run", args=(1, "x", [2]), kwargs={"k": {"v": None}}),
        FollowUp("app.tasks.Last", ""),
    )
    new = NewJob(
        "app.tasks.Mailer",
        "send",
        args=ARGS,
        kwargs=KWARGS,
        queue="mail",
        priority=-7,
        max_attempts=5,
        attempts_pinned=True,
        scheduled_at=datetime(2026, 1, 1, 12, 0, 10, 1),
        timeout_s=2.5,
        sensitive=True,
        then=then,
        parent_id=parent_id,
    )
    job_id = store.job_insert(new, now=T0)

    assert store.job_get(job_id) == Job(
        id=job_id,
        queue="mail",
        target="app.tasks.Mailer",
        method="send",
        args=ARGS,
        kwargs=KWARGS,
        priority=-7,
        status=JobState.PENDING,
        attempts=0,
        max_attempts=5,
        uncharged_attempts=0,
        lost_attempts=0,
        attempts_pinned=True,
        scheduled_at=datetime(2026, 1, 1, 12, 0, 10, 1),
        created_at=T0,
        started_at=None,
        finished_at=None,
        timeout_s=2.5,
        error_type=None,
        error_message=None,
        error_traceback=None,
        result=None,
        parent_id=parent_id,
        then=then,
        sensitive=True,
        cancel_requested=False,
        lease=None,
    )


def test_insert_defaults(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("app.tasks.Plain", "", delay_s=30.5), now=T0)
    job = store.job_get(job_id)
    assert job.queue == "default"
    assert job.method == ""
    assert job.args == ()
    assert job.kwargs == {}
    assert job.priority == 1
    assert job.max_attempts == 3
    assert job.attempts_pinned is False
    assert job.scheduled_at == at(30.5)
    assert job.created_at == T0
    assert job.timeout_s is None
    assert job.sensitive is False
    assert job.then == ()
    assert job.parent_id is None
    assert job.lease is None

    # scheduled_at wins over delay_s
    job_id = store.job_insert(NewJob("a.B", "", delay_s=99, scheduled_at=at(5)), now=T0)
    assert store.job_get(job_id).scheduled_at == at(5)


@pytest.mark.parametrize(
    "timing", [{}, {"delay_s": 30.250001}, {"scheduled_at": datetime(2026, 1, 1, 12, 0, 10, 1)}], ids=repr
)
@pytest.mark.parametrize("reserve", [None, Lease("runner", "tok-r", datetime(2030, 1, 2, 3, 4, 5, 6))], ids=repr)
def test_insert_on_the_database_clock_writes_what_insert_at_a_given_time_does(
    store: SqlStore, timing: dict[str, object], reserve: Lease | None
) -> None:
    # Without now= the row takes its times from the database inside the insert (PostgreSQL, MariaDB): a
    # statement of its own, which must write exactly the row the one given a time writes
    then = (FollowUp("app.tasks.Next", "run", args=(1, "x"), kwargs={"k": None}),)
    new = NewJob(
        "app.tasks.Mailer", "send", ARGS, KWARGS, "mail", -7, 5, True, timeout_s=2.5, sensitive=True, then=then
    )
    new = replace(new, **timing)  # type: ignore[arg-type]
    before = store.now()
    on_clock = store.job_get(store.job_insert(new, reserve=reserve))
    assert before <= on_clock.created_at <= store.now()
    given = store.job_get(store.job_insert(new, reserve=reserve, now=on_clock.created_at))
    assert replace(given, id=on_clock.id) == on_clock


def test_timeout_keeps_double_precision(store: SqlStore) -> None:
    # MySQL/MariaDB would make a plain Float column single precision (about 6 significant digits)
    job_id = store.job_insert(NewJob("a.B", "", timeout_s=1234.5678), now=T0)
    assert store.job_get(job_id).timeout_s == 1234.5678


def test_times_keep_microseconds_through_the_life_cycle(store: SqlStore) -> None:
    for n, micro in enumerate([0, 1, 500_000, 999_996]):
        base = datetime(2026, 3, 4, 5, 6, 7, micro)
        token = f"tok-{n}"
        job_id = store.job_insert(NewJob("a.B", "", scheduled_at=base), now=base)
        claimed = store.jobs_claim(claim_for(token=token, lease_s=30.000001), 1, now=base + timedelta(microseconds=1))
        assert [j.id for j in claimed] == [job_id]
        running = store.job_get(job_id)
        assert running.created_at == base
        assert running.scheduled_at == base
        assert running.started_at == base + timedelta(microseconds=1)
        assert running.lease is not None
        assert running.lease.expires_at == base + timedelta(seconds=30, microseconds=2)

        outcome = Outcome(job_id, token, 1, AttemptOutcome.COMPLETED, JobState.COMPLETED, result=1)
        assert store.jobs_finish([outcome], now=base + timedelta(microseconds=3))[0].recorded
        assert store.job_get(job_id).finished_at == base + timedelta(microseconds=3)
        [attempt] = store.job_attempts(job_id)
        assert attempt.started_at == base + timedelta(microseconds=1)
        assert attempt.finished_at == base + timedelta(microseconds=3)


def test_now_is_the_database_clock_in_naive_utc(store: SqlStore) -> None:
    moment = store.now()
    assert moment.tzinfo is None
    assert abs(moment - utc_now()) < timedelta(seconds=60)
    # and writes without now= use it
    job_id = store.job_insert(NewJob("a.B", ""))
    job = store.job_get(job_id)
    assert job.created_at == job.scheduled_at
    assert moment - timedelta(seconds=1) <= job.created_at <= store.now() + timedelta(seconds=1)


@pytest.mark.backends("postgresql")
def test_now_is_utc_whatever_the_session_time_zone(db_url: str) -> None:
    # a server (or role) with a local TimeZone setting must not shift the times errands writes
    tokyo = SqlStore(db_url + "%20-ctimezone%3DAsia/Tokyo")
    try:
        moment = tokyo.now()
        job_id = tokyo.job_insert(NewJob("a.B", ""))
        created = tokyo.job_get(job_id).created_at
    finally:
        tokyo.close()
    assert abs(moment - utc_now()) < timedelta(seconds=60)
    assert abs(created - utc_now()) < timedelta(seconds=60)


def test_get_missing_job_raises_job_not_found(store: SqlStore) -> None:
    with pytest.raises(JobNotFound) as caught:
        store.job_get(424242)
    assert caught.value.job_id == 424242


def test_insert_many_returns_ids_in_order(store: SqlStore) -> None:
    news = [
        NewJob("app.tasks.T", f"m{i}", args=(i, str(i)), kwargs={"i": i}, queue=f"q{i % 3}", priority=i % 4)
        for i in range(25)
    ]
    ids = store.jobs_insert_many(news, now=T0)
    assert len(ids) == 25
    assert len(set(ids)) == 25
    assert ids == sorted(ids)
    for job_id, new in zip(ids, news, strict=True):
        job = store.job_get(job_id)
        assert (job.method, job.args, job.kwargs, job.queue, job.priority) == (
            new.method,
            new.args,
            new.kwargs,
            new.queue,
            new.priority,
        )
        assert job.status is JobState.PENDING
        assert job.created_at == T0
        assert job.scheduled_at == T0
        assert job.lease is None
    assert store.jobs_count_by_status() == {"pending": 25}


def test_insert_many_keeps_each_jobs_schedule(store: SqlStore) -> None:
    ids = store.jobs_insert_many(
        [NewJob("a.B", "", delay_s=10), NewJob("a.B", "", scheduled_at=at(-5)), NewJob("a.B", "")], now=T0
    )
    assert [store.job_get(i).scheduled_at for i in ids] == [at(10), at(-5), T0]


def test_insert_many_empty_batch(store: SqlStore) -> None:
    assert store.jobs_insert_many([], now=T0) == []
    assert store.jobs_list(JobFilter()) == []
    assert store.jobs_count_by_status() == {}


def _seed_listing(store: SqlStore) -> dict[str, int]:
    """Eight jobs across queues, targets and states; returns their ids by name."""
    ids = {
        "a1": store.job_insert(NewJob("app.A", "", queue="alpha"), now=at(0)),
        "a2": store.job_insert(NewJob("app.A", "", queue="alpha"), now=at(1)),
        "b1": store.job_insert(NewJob("app.B", "", queue="beta"), now=at(2)),
        "b2": store.job_insert(NewJob("app.B", "", queue="beta"), now=at(3)),
        "c1": store.job_insert(NewJob("app.C", "", queue="alpha"), now=at(4)),
    }
    ids["k1"] = store.job_insert(NewJob("app.K", "", queue="beta", parent_id=ids["a1"]), now=at(5))
    ids["k2"] = store.job_insert(NewJob("app.K", "", queue="alpha", parent_id=ids["a1"]), now=at(6))
    ids["k3"] = store.job_insert(NewJob("app.K", "", queue="alpha", parent_id=ids["b1"]), now=at(7))
    # a1 runs, b2 is cancelled
    assert store.job_claim_by_id(ids["a1"], claim_for(), now=at(10)) is not None
    store.job_cancel(ids["b2"], now=at(10))
    return ids


def _ids(jobs: list[Job]) -> list[int]:
    return [job.id for job in jobs]


def test_list_is_newest_first_and_filters(store: SqlStore) -> None:
    ids = _seed_listing(store)
    everything = sorted(ids.values(), reverse=True)
    assert _ids(store.jobs_list(JobFilter())) == everything

    assert _ids(store.jobs_list(JobFilter(status=JobState.RUNNING))) == [ids["a1"]]
    assert _ids(store.jobs_list(JobFilter(status=JobState.CANCELLED))) == [ids["b2"]]
    assert _ids(store.jobs_list(JobFilter(status=JobState.COMPLETED))) == []
    pending = [i for i in everything if i not in (ids["a1"], ids["b2"])]
    assert _ids(store.jobs_list(JobFilter(status=JobState.PENDING))) == pending

    assert _ids(store.jobs_list(JobFilter(queue="beta"))) == [ids["k1"], ids["b2"], ids["b1"]]
    assert _ids(store.jobs_list(JobFilter(queue="nope"))) == []
    assert _ids(store.jobs_list(JobFilter(target="app.K"))) == [ids["k3"], ids["k2"], ids["k1"]]
    assert _ids(store.jobs_list(JobFilter(parent_id=ids["a1"]))) == [ids["k2"], ids["k1"]]
    assert _ids(store.jobs_list(JobFilter(parent_id=ids["b1"]))) == [ids["k3"]]

    # filters combine
    assert _ids(store.jobs_list(JobFilter(queue="alpha", target="app.K"))) == [ids["k3"], ids["k2"]]
    assert _ids(store.jobs_list(JobFilter(queue="alpha", status=JobState.RUNNING))) == [ids["a1"]]
    assert _ids(store.jobs_list(JobFilter(queue="beta", parent_id=ids["a1"], target="app.K"))) == [ids["k1"]]

    # the listed jobs are whole
    [running] = store.jobs_list(JobFilter(status=JobState.RUNNING))
    assert running == store.job_get(ids["a1"])


def test_list_limit_and_keyset_pagination(store: SqlStore) -> None:
    ids = _seed_listing(store)
    everything = sorted(ids.values(), reverse=True)
    assert _ids(store.jobs_list(JobFilter(limit=3))) == everything[:3]
    assert _ids(store.jobs_list(JobFilter(before_id=everything[2]))) == everything[3:]
    assert _ids(store.jobs_list(JobFilter(before_id=everything[2], limit=2))) == everything[3:5]
    assert _ids(store.jobs_list(JobFilter(before_id=min(everything)))) == []

    pages: list[list[int]] = []
    before: int | None = None
    while True:
        page = _ids(store.jobs_list(JobFilter(limit=3, before_id=before)))
        if not page:
            break
        pages.append(page)
        before = page[-1]
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [i for p in pages for i in p] == everything

    alpha = _ids(store.jobs_list(JobFilter(queue="alpha", limit=2)))
    assert alpha == [ids["k3"], ids["k2"]]
    assert _ids(store.jobs_list(JobFilter(queue="alpha", limit=2, before_id=alpha[-1]))) == [ids["c1"], ids["a2"]]


def test_count_by_status(store: SqlStore) -> None:
    assert store.jobs_count_by_status() == {}
    _seed_listing(store)
    assert store.jobs_count_by_status() == {"pending": 6, "running": 1, "cancelled": 1}


def test_follow_ups_by_parent(store: SqlStore) -> None:
    ids = _seed_listing(store)
    assert store.job_follow_ups(ids["a1"]) == [ids["k1"], ids["k2"]]
    assert store.job_follow_ups(ids["b1"]) == [ids["k3"]]
    assert store.job_follow_ups(ids["c1"]) == []
    assert store.job_follow_ups(999_999) == []


def test_attempts_of_a_job_that_never_ran(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("a.B", ""), now=T0)
    assert store.job_attempts(job_id) == []
    assert store.job_attempts(999_999) == []


def test_a_claimed_job_is_the_stored_job_field_for_field(store: SqlStore) -> None:
    """Each backend reads the claimed rows its own way (MariaDB: as JSON arrays): the Jobs must be what
    job_get reads, after a failed attempt too (error fields with quotes, newlines, non-ASCII)."""
    then = (FollowUp("app.tasks.Next", "run", args=(1, "x", [2]), kwargs={"k": {"v": None}}),)
    new = NewJob(
        "app.tasks.Mailer", "send", args=ARGS, kwargs=KWARGS, queue="mail", priority=-7, timeout_s=2.5, then=then
    )
    job_id = store.job_insert(new, now=T0)
    [first] = store.jobs_claim(Claim("w1", "tok-1", 30.0, "w1-host:1"), 5, now=T0 + timedelta(seconds=1))
    assert first == store.job_get(job_id)
    error = ErrorInfo("KeyError", 'a "quoted" \\ message\nline 2 ✓', "Traceback (most recent call last):\n  é\n")
    retry = Outcome(job_id, "tok-1", 1, AttemptOutcome.FAILED, JobState.PENDING, error=error, retry_at=T0)
    assert store.jobs_finish([retry], now=T0 + timedelta(seconds=2))[0].recorded

    [again] = store.jobs_claim(Claim("w2", "tok-2", 30.0, "w2-host:1"), 5, now=T0 + timedelta(seconds=3.000007))

    assert again == store.job_get(job_id)
    assert (again.attempts, again.error_message, again.then) == (2, error.message, then)
    assert again.lease is not None and again.lease.expires_at == T0 + timedelta(seconds=33.000007)


def test_a_connection_given_back_inside_a_transaction_comes_back_clean(store: SqlStore) -> None:
    # The pool rolls back only what is open (MariaDB: a ROLLBACK round trip saved per transaction otherwise)
    raw = store.engine.raw_connection()  # the pooled connection, with no SQLAlchemy transaction around it
    cursor = raw.cursor()
    if store.dialect == "sqlite":
        cursor.execute("BEGIN")  # the others' drivers begin one implicitly
    cursor.execute("INSERT INTO errands_locks (name, owner, expires_at) VALUES ('held', 'me', '2030-01-01')")
    cursor.close()
    raw.close()  # back to the pool without a commit
    with store.engine.connect() as conn:  # the same connection: the pool's only one
        assert conn.exec_driver_sql("SELECT count(*) FROM errands_locks").scalar_one() == 0


def test_insert_many_writes_what_insert_does(store: SqlStore) -> None:
    # PostgreSQL copies the batch in COPY's binary format (types given up front): every field must come back
    # as one insert would write it, the edges of each type included
    parent_id = store.job_insert(NewJob("app.tasks.Parent", ""), now=T0)
    then = (FollowUp("app.tasks.Next", "run", args=(1, "x"), kwargs={"k": None}),)
    news = [
        NewJob("app.tasks.Mailer", "send", ARGS, KWARGS, "mail", -(2**31), 5, True, timeout_s=2.5, then=then),
        NewJob("m:f", "", (), {}, "q ✓", 2**31 - 1, 1, False, scheduled_at=at(0.000001), parent_id=parent_id),
        NewJob("m:f", "", ("é",), queue="default", delay_s=30.5, timeout_s=7, sensitive=True),
    ]
    ids = store.jobs_insert_many(news, now=T0)
    assert ids == sorted(ids)
    for job_id, new in zip(ids, news, strict=True):
        one = store.job_get(store.job_insert(new, now=T0))
        assert store.job_get(job_id) == replace(one, id=job_id)
