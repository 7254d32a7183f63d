"""Several workers on one database: every job runs exactly once, through database errors too."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from errands.errors import StoreError
from errands.jobs import Job, JobState
from errands.logs import JobLog
from errands.store import Claim, Finished, JobFilter, Outcome, SqlStore
from errands.worker.loop import WORKER_FAILED, Worker, WorkerOptions

if TYPE_CHECKING:
    from conftest import Project

JOBS = 2000
WORKERS = 4
BATCH = 500


@pytest.mark.slow
def test_four_workers_run_two_thousand_jobs_exactly_once(project: Project) -> None:
    # A lease that outlasts a loaded CI machine's stalls: this test is about sharing the work; what a worker
    # that falls a whole lease behind does is test_worker_crash's (with the project's 2 s leases).
    leases = {"ERRANDS_LEASE_TIMEOUT": "15", "ERRANDS_HEARTBEAT_INTERVAL": "1"}
    # Every worker is up before the jobs come: burst workers started after the enqueue left the whole backlog
    # to the first one up on a quiet machine (2,000 jobs in 2.7 s), and the work was not shared.
    workers = [project.start_worker("--concurrency", "2", **leases) for _ in range(WORKERS)]
    for worker in workers:
        project.wait_registered(worker)
    began = time.monotonic()
    for start in range(0, JOBS, BATCH):
        ids = project.main.enqueue_many([project.request("record", i) for i in range(start, start + BATCH)])
        assert len(ids) == BATCH
    project.wait_for(lambda: project.store.jobs_count_by_status().get("completed") == JOBS, 240, what="every job done")
    took = time.monotonic() - began
    for worker in workers:
        worker.signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait(60) == 0, worker.output()
    print(f"{project.backend}: {JOBS} jobs on {WORKERS} workers in {took:.1f}s")

    counts = project.record_counts()
    missing = sorted(set(range(JOBS)) - set(counts))
    assert missing == [], (project.store.jobs_count_by_status(), _story(project, missing))
    twice = [i for i, n in counts.items() if n != 1]
    assert twice == [], _story(project, twice)
    assert project.store.jobs_count_by_status() == {"completed": JOBS}
    jobs = project.store.jobs_list(JobFilter(limit=JOBS))
    assert {(job.status, job.attempts) for job in jobs} == {(JobState.COMPLETED, 1)}
    # the work was shared: every worker process ran some of it (each record's pid is a child of one worker)
    assert len({pid for _, pid in project.records()}) >= WORKERS


def _story(project: Project, numbers: list[int]) -> str:
    """What the logs say about the first few jobs that ran more than once (record i is job id i + 1)."""
    lines = [line for line in project.read("logs/errors.log").splitlines() if "job=- " in line][:20]
    for i in numbers[:3]:
        lines += [line for line in project.log_text().splitlines() if f" job={i + 1} " in line]
        lines += [f"{a}" for a in project.attempts(i + 1)]
    return "\n".join(lines)


class FlakyStore:
    """A store whose first calls of a kind fail (StoreError, as a deadlock does) or, for claims, find nothing
    (as SKIP LOCKED does while another transaction holds the due rows)."""

    def __init__(self, inner: SqlStore, fail: dict[str, int] | None = None, empty_claims: int = 0) -> None:
        self._inner = inner
        self.fail = dict(fail or {})
        self.empty_claims = empty_claims

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._inner, name)
        if name not in self.fail:
            return method

        def failing(*args: Any, **kw: Any) -> Any:
            self._maybe_fail(name)
            return method(*args, **kw)

        return failing

    def _maybe_fail(self, name: str) -> None:
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise StoreError("database error: OperationalError: (1213, 'Deadlock found when trying to get lock')")

    def jobs_claim(self, claim: Claim, limit: int, **kw: Any) -> list[Job]:
        self._maybe_fail("jobs_claim")
        if self.empty_claims > 0:
            self.empty_claims -= 1
            return []
        return self._inner.jobs_claim(claim, limit, **kw)

    def jobs_finish(self, outcomes: Sequence[Outcome], **kw: Any) -> list[Finished]:
        self._maybe_fail("jobs_finish")
        return self._inner.jobs_finish(outcomes, **kw)


def _run_in_process(
    project: Project, store: FlakyStore, monkeypatch: pytest.MonkeyPatch, stop_when: Callable[[], bool] | None = None
) -> int:
    """A burst worker in this process; with `stop_when`, stopped (as by SIGTERM) once that holds."""
    monkeypatch.chdir(project.dir)  # the pool's children import the jobs from their working directory
    settings = project.settings()
    log = JobLog(settings.log_file, settings.error_log_file)
    try:
        worker = Worker(store, settings, log, WorkerOptions(concurrency=2, burst=True))  # type: ignore[arg-type]
        if stop_when is None:
            return worker.run()
        codes: list[int] = []
        runner = threading.Thread(target=lambda: codes.append(worker.run()))
        runner.start()
        try:
            project.wait_for(stop_when, 30, what="the moment to stop the worker")
        finally:
            worker.request_stop()
            runner.join(60)
        assert not runner.is_alive()
        return codes[0] if codes else -1  # -1: run() raised (the thread printed it)
    finally:
        log.close()


def test_a_worker_survives_database_errors_and_records_each_outcome_once(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = project.main.enqueue_many([project.request("record", i) for i in range(6)])
    store = FlakyStore(project.store, fail={"jobs_claim": 1, "jobs_finish": 2})
    assert _run_in_process(project, store, monkeypatch) == 0  # before the fix: StoreError, the worker died

    assert store.fail == {"jobs_claim": 0, "jobs_finish": 0}
    assert project.record_counts() == {i: 1 for i in range(6)}
    for job_id in ids:
        job = project.job(job_id)
        assert (job.status, job.attempts) == (JobState.COMPLETED, 1)
    log = project.log_text()
    assert log.count("Deadlock found") == 3
    for job_id in ids:  # an outcome whose write failed is written later, not decided (and logged) again
        assert log.count(f"job={job_id} attempt=1 Job completed") == 1


def test_a_burst_worker_does_not_take_locked_rows_for_an_empty_queue(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = project.main.enqueue_many([project.request("record", i) for i in range(3)])
    store = FlakyStore(project.store, empty_claims=2)
    assert _run_in_process(project, store, monkeypatch) == 0

    assert store.empty_claims == 0
    assert [project.job(job_id).status for job_id in ids] == [JobState.COMPLETED] * 3  # before: all pending
    assert project.record_counts() == {0: 1, 1: 1, 2: 1}


def test_a_worker_whose_database_is_unreachable_at_start_exits_non_zero(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    children_before = set(project.children_of(os.getpid()))
    store = FlakyStore(project.store, fail={"now": 1_000_000, "worker_register": 1_000_000})
    assert _run_in_process(project, store, monkeypatch) == WORKER_FAILED  # before the fix: StoreError escaped

    assert "could not start: database error" in project.read("logs/errors.log")
    started = set(project.children_of(os.getpid())) - children_before
    assert [pid for pid in started if project.pid_alive(pid)] == []  # its pool's children were stopped


def test_a_worker_that_could_not_write_its_outcomes_exits_non_zero(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    [job_id] = project.main.enqueue_many([project.request("record", 0)])
    store = FlakyStore(project.store, fail={"jobs_finish": 1_000_000})  # the database is gone for writes
    code = _run_in_process(project, store, monkeypatch, stop_when=lambda: project.record_counts() == {0: 1})
    assert code == WORKER_FAILED  # before the fix: shutdown raised StoreError half-way (and run() returned 0)

    assert "outcome(s) could not be written" in project.read("logs/errors.log")
    assert project.job(job_id).status is JobState.RUNNING  # its lease expires, then the rescuer returns it
    assert project.store.workers_list(alive_within_s=3600) == []  # the shutdown went on to the end
