"""Client.run_now (`errands run-job`): a chain of follow-ups runs in this process, each reserved to it until
its turn, while a worker polls the same database."""

from __future__ import annotations

import os
import textwrap
from typing import TYPE_CHECKING

import pytest

from errands.client import JobRequest
from errands.jobs import JobState

if TYPE_CHECKING:
    from conftest import Project

CHAIN = textwrap.dedent(
    """
    import time


    class Chain:
        def first(self):
            return "first"

        def slow(self, seconds):
            time.sleep(seconds)
            return "slow"

        def next_job(self, result):
            return ("slow", [5.0]) if result == "first" else None
    """
)


@pytest.mark.backends("sqlite", "postgresql")
def test_follow_ups_waiting_their_turn_keep_their_reservation(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # first's follow-ups: next_job()'s (slow, 5 s, more than the 2 s lease) and the head of its `then` chain
    # (record), both reserved to this run. record waits behind slow; before the fix its reservation lapsed
    # after 2 s and the worker took it mid-chain.
    (project.dir / "chainjobs.py").write_text(CHAIN)
    monkeypatch.chdir(project.dir)
    worker = project.start_worker("--concurrency", "1")
    project.wait_registered(worker)
    allowed = {"chainjobs.Chain": ["first", "slow"], "wjobs:record": []}
    client = project.client(allowed_jobs=allowed)

    request = JobRequest("chainjobs.Chain", "first", then=[("wjobs:record", "", [9])])
    finished = client.run_now(request)

    assert [(job.display_name, job.status) for job in finished] == [
        ("chainjobs.Chain::first", JobState.COMPLETED),
        ("chainjobs.Chain::slow", JobState.COMPLETED),
        ("wjobs:record", JobState.COMPLETED),
    ]
    for job in finished:
        [attempt] = project.attempts(job.id)
        assert attempt.worker is not None and attempt.worker.endswith(f":{os.getpid()}"), job
    assert project.record_counts() == {9: 1}
