"""Client: every input checked before anything is stored; refusals logged; batches all or nothing.

These use the `store` fixture, so they run on every backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from errands.checks import json_value as _json_value
from errands.client import Client, JobRequest
from errands.errors import InvalidInput, InvalidTransition, JobNotFound, TargetNotAllowed
from errands.jobs import FollowUp, JobState
from errands.settings import Settings
from errands.store import SqlStore
from errands.store.base import JobFilter

ALLOWED = {
    "examples.jobs.SampleJob": ["process", "send_email"],
    "examples.jobs.FailingJob": ["process"],
    "examples.jobs:add": [],
}


@pytest.fixture
def client(store: SqlStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    # no errands.toml or variables from outside: the Settings below are all there is
    for name in list(os.environ):
        if name.upper().startswith(("ERRANDS_", "JOB_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        allowed_jobs=ALLOWED,
        max_retries=4,
        default_priority=6,
        log_file=tmp_path / "logs" / "jobs.log",
        error_log_file=tmp_path / "logs" / "errors.log",
    )
    opened = Client(settings, store)
    yield opened
    opened.log.close()


def stored(client: Client) -> list[Any]:
    return client._store.jobs_list(JobFilter(limit=1000))


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def sample(**options: Any) -> JobRequest:
    return JobRequest("examples.jobs.SampleJob", "process", **{"args": ["test1", "test2"], **options})


# the happy path -----------------------------------------------------------------------------------------


def test_enqueue_stores_the_job_with_the_settings_defaults(client: Client) -> None:
    job_id = client.enqueue(sample(kwargs={"x": {"nested": [1, 2.5, None, True]}}))
    job = client.get(job_id)
    assert job.status is JobState.PENDING
    assert job.target == "examples.jobs.SampleJob" and job.method == "process"
    assert job.args == ("test1", "test2")
    assert job.kwargs == {"x": {"nested": [1, 2.5, None, True]}}
    assert job.priority == 6  # default_priority
    assert job.max_attempts == 4  # max_retries
    assert job.attempts_pinned is False
    assert job.queue == "default"
    assert job.timeout_s is None
    assert job.sensitive is False
    assert f"job={job_id} attempt=- Job queued: examples.jobs.SampleJob::process on default priority=6" in read(
        client.settings.log_file
    )


def test_enqueue_with_every_option(client: Client) -> None:
    job_id = client.enqueue(sample(priority=-3, queue="emails", timeout=2.5, max_attempts=2, sensitive=True, delay=60))
    job = client.get(job_id)
    assert (job.priority, job.queue, job.timeout_s, job.max_attempts) == (-3, "emails", 2.5, 2)
    assert job.attempts_pinned is True
    assert job.sensitive is True
    assert job.scheduled_at >= job.created_at + timedelta(seconds=59)

    # a function target takes "-" for no method
    job = client.get(client.enqueue(JobRequest("examples.jobs:add", "-", args=[1, 2])))
    assert (job.target, job.method, job.args) == ("examples.jobs:add", "", (1, 2))

    # the largest values allowed: what the columns hold; max_attempts leaves room for the + 1 of a lost attempt
    job = client.get(client.enqueue(sample(priority=2**31 - 1, max_attempts=1_000_000, queue="q" * 100)))
    assert (job.priority, job.max_attempts, len(job.queue)) == (2**31 - 1, 1_000_000, 100)
    assert client.get(client.enqueue(sample(priority=-(2**31)))).priority == -(2**31)


def test_an_aware_time_is_converted_to_utc(client: Client) -> None:
    at = datetime(2031, 5, 6, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    job = client.get(client.enqueue(sample(at=at)))
    assert job.scheduled_at == datetime(2031, 5, 6, 10, 30)
    naive = client.get(client.enqueue(sample(at=datetime(2031, 5, 6, 12, 30))))
    assert naive.scheduled_at == datetime(2031, 5, 6, 12, 30)  # naive is taken as UTC already
    utc = client.get(client.enqueue(sample(at=datetime(2031, 5, 6, 12, 30, tzinfo=UTC))))
    assert utc.scheduled_at == datetime(2031, 5, 6, 12, 30)


def test_then_steps_are_stored(client: Client) -> None:
    job_id = client.enqueue(
        sample(
            then=[
                ("examples.jobs.SampleJob", "send_email", ["a@example.com"]),
                ("examples.jobs:add", "-", (1, 2)),
                FollowUp("examples.jobs.FailingJob", "process", (), {}),
                ("examples.jobs.SampleJob", "send_email"),
            ]
        )
    )
    assert client.get(job_id).then == (
        FollowUp("examples.jobs.SampleJob", "send_email", ("a@example.com",)),
        FollowUp("examples.jobs:add", "", (1, 2)),
        FollowUp("examples.jobs.FailingJob", "process"),
        FollowUp("examples.jobs.SampleJob", "send_email"),
    )


# refusals and bad input store nothing -------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("args not JSON", {"args": [object()]}),
    ("args NaN", {"args": [float("nan")]}),
    ("args a set", {"args": [{1, 2}]}),
    ("args a str", {"args": "abc"}),
    ("args a dict", {"args": {"a": 1}}),
    ("kwargs not JSON", {"kwargs": {"a": b"bytes"}}),
    ("kwargs int keys", {"kwargs": {1: 2}}),
    ("kwargs a list", {"kwargs": [("a", 1)]}),
    ("priority str", {"priority": "high"}),
    ("priority float", {"priority": 1.5}),
    ("priority bool", {"priority": True}),
    ("priority too big", {"priority": 2**40}),
    ("delay negative", {"delay": -1}),
    ("delay NaN", {"delay": float("nan")}),
    ("delay infinite", {"delay": float("inf")}),
    ("delay past year 9999", {"delay": 1e12}),
    ("delay str", {"delay": "5"}),
    ("timeout zero", {"timeout": 0}),
    ("timeout negative", {"timeout": -2}),
    ("timeout NaN", {"timeout": float("nan")}),
    ("timeout infinite", {"timeout": float("inf")}),
    ("timeout bool", {"timeout": True}),
    ("max_attempts zero", {"max_attempts": 0}),
    ("max_attempts negative", {"max_attempts": -1}),
    ("max_attempts str", {"max_attempts": "3"}),
    ("max_attempts too big", {"max_attempts": 2**31}),
    ("queue empty", {"queue": ""}),
    ("queue padded", {"queue": " emails"}),
    ("queue trailing space", {"queue": "emails "}),
    ("queue newline", {"queue": "a\nb"}),
    ("queue too long", {"queue": "q" * 101}),
    ("then one element", {"then": [("examples.jobs.SampleJob",)]}),
    ("then four elements", {"then": [("examples.jobs.SampleJob", "process", [], {})]}),
    ("then args not a list", {"then": [("examples.jobs.SampleJob", "process", 5)]}),
    ("then args a str", {"then": [("examples.jobs.SampleJob", "process", "ab")]}),
    ("then args not JSON", {"then": [("examples.jobs.SampleJob", "process", [object()])]}),
    ("then kwargs not JSON", {"then": [FollowUp("examples.jobs.SampleJob", "process", (), {"a": object()})]}),
]


def test_bad_input_raises_and_stores_nothing(client: Client) -> None:
    # one database for all the cases (a fresh one per case is slow on the servers); each case is named
    for name, options in BAD_REQUESTS:
        with pytest.raises(InvalidInput) as caught:
            client.enqueue(sample(**options))
        assert not isinstance(caught.value, TargetNotAllowed), name
        assert str(caught.value) and "\n" not in str(caught.value), name  # one clear line
        assert stored(client) == [], name
    assert "Job queued" not in read(client.settings.log_file)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


SAMPLE = "examples.jobs.SampleJob"
LONG_TARGET = "examples.jobs." + "J" * 242  # 256 characters
LONG_METHOD = "p" * 101
AT_PLUS_5 = timezone(timedelta(hours=5))
# issue 10: each raised something else than InvalidInput (TypeError, OverflowError, a database error) or, for a
# set, was accepted with its order undefined; or was stored on SQLite but not on the servers
HOSTILE_REQUESTS: list[tuple[str, Any]] = [
    ("at a str", sample(at="2030-01-01")),
    ("at a date", sample(at=date(2030, 1, 1))),
    ("at before year 1 in UTC", sample(at=datetime(1, 1, 1, tzinfo=AT_PLUS_5))),
    ("at after year 9999 in UTC", sample(at=datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=5))))),
    ("at before year 1000 (MariaDB)", sample(at=datetime(999, 12, 31))),
    ("queue an int", sample(queue=5)),
    ("target None", JobRequest(None, "process")),  # type: ignore[arg-type]
    ("method None", JobRequest(SAMPLE, None)),  # type: ignore[arg-type]
    ("target over 255 characters", JobRequest(LONG_TARGET, "process")),  # allowed, and stored on SQLite only
    ("method over 100 characters", JobRequest(SAMPLE, LONG_METHOD)),
    ("then None", sample(then=None)),
    ("then [5]", sample(then=[5])),
    ("then a str", sample(then="ab")),
    ("then target None", sample(then=[(None, "process")])),
    ("then a huge int", sample(then=[(SAMPLE, "process", [10**30])])),
    ("then over 64 KiB", sample(then=[(SAMPLE, "process", ["x" * 70_000])])),
    ("args a 5,000-digit int", sample(args=[10**5000])),
    ("args a 65-bit int", sample(args=[2**63])),
    ("args a negative 65-bit int", sample(args=[-(2**63) - 1])),
    ("args nested 101 deep", sample(args=nested(101))),
    ("args nested 5,000 deep", sample(args=nested(5000))),
    ("kwargs nested 101 deep", sample(kwargs={"a": nested(100)})),
    ("args a set", sample(args={1, 2})),
    ("args a frozenset", sample(args=frozenset({1}))),
    ("args a lone surrogate", sample(args=["\udcff"])),
    ("sensitive a str", sample(sensitive="no")),
    ("sensitive None", sample(sensitive=None)),
    ("max_attempts 2**31 - 1 (a lost attempt adds 1)", sample(max_attempts=2**31 - 1)),
    ("timeout past a year", sample(timeout=1e12)),
]


def test_hostile_input_raises_invalid_input_and_stores_nothing(client: Client) -> None:
    client.settings.allowed_jobs.update({LONG_TARGET: ["process"], SAMPLE: ["process", LONG_METHOD]})
    for name, request in HOSTILE_REQUESTS:
        with pytest.raises(InvalidInput) as caught:
            client.enqueue(request)
        assert str(caught.value) and "\n" not in str(caught.value), name
        assert len(str(caught.value)) < 300, name  # a 10 MB value is not echoed whole
        assert stored(client) == [], name
    with pytest.raises(InvalidInput):
        client.enqueue_many([sample(), ("examples.jobs.SampleJob", "process")])  # type: ignore[list-item]
    assert stored(client) == []


def test_the_limits_themselves_are_stored_alike_on_every_backend(client: Client) -> None:
    long_target = "examples.jobs." + "J" * 241  # 255 characters
    client.settings.allowed_jobs[long_target] = ["p" * 100]
    edge = [2**63 - 1, -(2**63), nested(99), {"k": nested(98)}]
    job = client.get(
        client.enqueue(JobRequest(long_target, "p" * 100, args=edge, at=datetime(1000, 1, 1), max_attempts=1_000_000))
    )
    assert (job.target, job.method, job.args) == (long_target, "p" * 100, tuple(edge))
    assert (job.scheduled_at, job.max_attempts) == (datetime(1000, 1, 1), 1_000_000)
    late = client.get(client.enqueue(sample(at=datetime(9999, 12, 31, 23, 59, 59, 999999))))
    assert late.scheduled_at == datetime(9999, 12, 31, 23, 59, 59, 999999)


@pytest.mark.parametrize("job_id", [0, -1, 2**63, 10**30])
def test_an_id_no_job_can_have_is_not_found(client: Client, job_id: int) -> None:
    for read in (client.get, client.attempts, client.follow_ups, client.cancel, client.retry):
        with pytest.raises(JobNotFound):
            read(job_id)


def test_an_id_that_is_no_int_is_bad_input(client: Client) -> None:
    for bad in ("1", 1.0, None, True):
        with pytest.raises(InvalidInput):
            client.get(bad)  # type: ignore[arg-type]


def test_listing_a_queue_no_job_can_have_is_bad_input(client: Client) -> None:
    for bad in ("\x00", "q" * 101, " padded"):
        with pytest.raises(InvalidInput):
            client.jobs(queue=bad)


REFUSED = [
    ("os", "system"),
    ("os.path", "system"),
    ("examples.jobs.SampleJob", "_private"),
    ("examples.jobs.SampleJob", "delete"),
    ("examples.jobs:add", "process"),
    ("examples.jobs:sub", ""),
]


def test_a_refused_target_raises_is_logged_and_stores_nothing(client: Client) -> None:
    for target, method in REFUSED:
        with pytest.raises(TargetNotAllowed) as caught:
            client.enqueue(JobRequest(target, method, args=["rm -rf /"]))
        assert caught.value.target == target
        assert stored(client) == [], target
        shown = f"{target}::{method}" if method else target
        assert f"ERROR job=- attempt=- Refused job: {shown}: " in read(client.settings.error_log_file), shown
        assert f"Refused job: {shown}: " in read(client.settings.log_file), shown  # errors go to both files


def test_a_refused_then_step_refuses_the_whole_job(client: Client) -> None:
    with pytest.raises(TargetNotAllowed) as caught:
        client.enqueue(sample(then=[("examples.jobs.SampleJob", "send_email"), ("os", "system", ["id"])]))
    assert caught.value.target == "os"
    assert stored(client) == []
    assert "Refused job: os::system" in read(client.settings.error_log_file)


# enqueue_many -------------------------------------------------------------------------------------------


def test_enqueue_many_stores_a_batch_in_order(client: Client) -> None:
    requests = [
        sample(args=["a", "b"]),
        JobRequest("examples.jobs:add", "", args=[1, 2], priority=9),
        sample(args=["c", "d"], queue="other"),
    ]
    ids = client.enqueue_many(requests)
    assert len(ids) == 3 and ids == sorted(ids)
    jobs = [client.get(job_id) for job_id in ids]
    assert [job.args for job in jobs] == [("a", "b"), (1, 2), ("c", "d")]
    assert [job.priority for job in jobs] == [6, 9, 6]
    assert [job.queue for job in jobs] == ["default", "default", "other"]
    assert client.enqueue_many([]) == []


def test_enqueue_many_is_all_or_nothing(client: Client) -> None:
    cases: list[tuple[JobRequest, type[Exception]]] = [
        (sample(args=[object()]), InvalidInput),
        (sample(timeout=0), InvalidInput),
        (sample(then=[("os", "system", ["id"])]), TargetNotAllowed),
        (JobRequest("os", "system", args=["id"]), TargetNotAllowed),
    ]
    for bad, error in cases:
        with pytest.raises(error):
            client.enqueue_many([sample(), sample(args=["x", "y"]), bad, sample()])
        assert stored(client) == [], bad


# cancel and retry ---------------------------------------------------------------------------------------


def test_cancel_a_pending_job_then_retry_it(client: Client) -> None:
    job_id = client.enqueue(sample())
    cancelled = client.cancel(job_id)
    assert cancelled.status is JobState.CANCELLED
    assert client.get(job_id).status is JobState.CANCELLED
    assert f"job={job_id} attempt=0 Job cancelled: {job_id}" in read(client.settings.log_file)
    with pytest.raises(InvalidTransition) as caught:
        client.cancel(job_id)
    assert (caught.value.from_, caught.value.to) == ("cancelled", "cancelled")

    retried = client.retry(job_id)
    assert retried.status is JobState.PENDING
    assert retried.budget == 4  # a fresh budget of max_retries
    assert client.get(job_id).status is JobState.PENDING
    assert f"Job {job_id} retried by hand: pending, 4 more attempts" in read(client.settings.log_file)
    with pytest.raises(InvalidTransition):
        client.retry(job_id)  # pending: nothing to retry

    # unknown jobs
    with pytest.raises(JobNotFound):
        client.cancel(999_999)
    with pytest.raises(JobNotFound):
        client.retry(999_999)
    with pytest.raises(JobNotFound):
        client.get(999_999)


def test_listing_by_status_and_queue(client: Client) -> None:
    first = client.enqueue(sample(queue="a"))
    second = client.enqueue(sample(queue="b"))
    client.cancel(first)
    assert [job.id for job in client.jobs(status=JobState.CANCELLED)] == [first]
    assert [job.id for job in client.jobs(queue="b")] == [second]
    assert [job.id for job in client.jobs()] == [second, first]


# the arguments' JSON check: plain lists and dicts skip the round trip, and must come out the same ---------

_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text()
_values = st.recursive(_scalars, lambda inner: st.lists(inner) | st.tuples(inner) | st.dictionaries(st.text(), inner))


@hypothesis_settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a loaded machine draws slowly
@given(st.lists(_values) | st.dictionaries(st.text(), _values))
def test_json_values_come_out_as_a_json_round_trip_gives_them(value: Any) -> None:
    try:
        expected = json.loads(json.dumps(value, allow_nan=False))
    except ValueError:  # NaN or infinity somewhere
        with pytest.raises(InvalidInput, match="must be JSON values"):
            _json_value("args", value)
        return
    assert _json_value("args", value) == expected
    assert json.dumps(_json_value("args", value)) == json.dumps(expected)  # same types too (1 vs 1.0, lists)
