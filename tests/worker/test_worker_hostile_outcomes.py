"""A job's hostile outcome never stalls a worker (issue 10, item 1): a job raising ValueError("bad\\x00msg")
(PostgreSQL refuses NUL in text) or an exception whose class name is over 300 characters (MariaDB's
error_type holds 255), among others in the same batch: `errands worker --burst` records every job and exits."""

from __future__ import annotations

import subprocess
import textwrap
from typing import TYPE_CHECKING

from errands.client import JobRequest
from errands.jobs import JobState

if TYPE_CHECKING:
    from conftest import Project

HOSTILE = textwrap.dedent(
    """
    def nul():
        raise ValueError("bad\\x00msg")


    def long_name():
        raise type("Long" + "E" * 300, (Exception,), {})("a class name over 255 characters")
    """
).lstrip()


def test_a_burst_worker_records_hostile_outcomes_and_exits(project: Project) -> None:
    (project.dir / "hostile.py").write_text(HOSTILE)
    with (project.dir / "errands.toml").open("a") as config:  # [allowed_jobs] is the file's last table
        config.write('"hostile:nul" = []\n"hostile:long_name" = []\n')
    allowed = {**project.settings().allowed_jobs, "hostile:nul": [], "hostile:long_name": []}
    client = project.client(allowed_jobs=allowed)
    ids = [project.enqueue("record", i, max_attempts=1) for i in range(3)]
    hostile = [client.enqueue(JobRequest(f"hostile:{name}", max_attempts=1)) for name in ("nul", "long_name")]
    ids += [project.enqueue("record", i, max_attempts=1) for i in range(3, 6)]

    worker = project.start_worker("--burst", "--concurrency", "2")
    try:
        code = worker.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the burst worker never exited: {project.store.jobs_count_by_status()}") from None
    assert code == 0, worker.output()

    assert project.store.jobs_count_by_status() == {"completed": 6, "failed": 2}
    nul = project.job(hostile[0])
    assert (nul.status, nul.error_type, nul.error_message) == (JobState.FAILED, "ValueError", "bad\\x00msg")
    long_name = project.job(hostile[1])
    assert long_name.status is JobState.FAILED
    assert long_name.error_type is not None and long_name.error_type.startswith("hostile.LongEEE")
    assert len(long_name.error_type) <= 255
    assert sorted(i for i, _ in project.records()) == list(range(6))
