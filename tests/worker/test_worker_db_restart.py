"""A worker process rides out its database restarting: it keeps running, the job it was running when the
database went away is recorded once it is back, and jobs enqueued after the restart run. On a throwaway
PostgreSQL (tests/pgserver.py): this module's `db_url` is that server's, migrated, instead of the shared ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from errands.jobs import JobState
from errands.store import SqlStore
from errands.store.migrate import upgrade
from pgserver import PgServer

if TYPE_CHECKING:
    from conftest import Project

pytestmark = pytest.mark.slow


@pytest.fixture
def db_url(pg_server: PgServer) -> str:
    store = SqlStore(pg_server.url)
    try:
        upgrade(store)
    finally:
        store.close()
    return pg_server.url


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_a_worker_keeps_running_through_a_database_restart_and_finishes_its_jobs(
    project: Project, pg_server: PgServer, mode: str
) -> None:
    worker = project.start_worker("--concurrency", "2")
    project.wait_registered(worker)
    before = [project.enqueue("record", i) for i in range(3)]
    for job_id in before:
        project.wait_status(job_id, JobState.COMPLETED)
    across = project.enqueue("wait_for_file", "go")
    project.wait_file("go.started")

    pg_server.restart(mode)
    project.touch("go")  # the job ends after the restart: its outcome is written on a new connection
    after = [project.enqueue("record", i) for i in range(3, 6)]  # the first call after the restart succeeds

    for job_id in [across, *after]:
        project.wait_status(job_id, JobState.COMPLETED, timeout=60)
    assert worker.popen.poll() is None, worker.output()
    assert sorted(project.record_counts()) == list(range(6))
    assert project.outcomes(across) == ["completed"]  # one attempt: its lease outlived the outage
