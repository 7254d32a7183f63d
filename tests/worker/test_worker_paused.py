"""Paused queues, seen through a real worker process: nothing of a paused queue is claimed, its other queues go
on, and a resume lets its jobs run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from errands.jobs import JobState
from errands.worker.paused import PAUSE_READ_S

if TYPE_CHECKING:
    from conftest import Project


def test_a_worker_skips_a_paused_queue_until_it_is_resumed(project: Project) -> None:
    client = project.main
    client.pause("slow", actor="test")
    worker = project.start_worker("--concurrency", "1")
    project.wait_registered(worker)

    held = project.enqueue("record", 1, queue="slow")
    control = project.enqueue("record", 2)
    project.wait_status(control, JobState.COMPLETED)  # the worker claims: just not from "slow"
    assert project.job(held).status is JobState.PENDING

    client.resume("slow", actor="test")
    project.wait_status(held, JobState.COMPLETED)

    # a pause while it runs takes effect once the worker reads the paused set again (at most once a second)
    client.pause("slow", actor="test")
    time.sleep(PAUSE_READ_S + 0.5)  # the bound the worker promises: there is no event for "read it again"
    later = project.enqueue("record", 3, queue="slow")
    control = project.enqueue("record", 4)
    project.wait_status(control, JobState.COMPLETED)
    assert project.job(later).status is JobState.PENDING
    assert sorted(i for i, _ in project.records()) == [1, 2, 4]
