"""For your own tests: run enqueued jobs inline, in the test's process, with no worker and no server.

    client = errands.connect(Settings(database_url=f"sqlite:///{tmp_path}/jobs.db", allowed_jobs=..., retry_delay=0))
    job_id = client.enqueue(JobRequest("myapp.jobs:send_welcome", args=[user.id]))
    [job] = errands.testing.drain(client)
    assert job.status is JobState.COMPLETED

`drain` takes the due jobs one at a time, in the order a worker would (priority, then due time, then id), and
runs each in this process: the allow-list is checked as a worker's child checks it, a failure is retried by the
settings' rules, and follow-ups (`then=`, `next_job()`) are recorded and, being due at once, run in the same
drain. What is not due yet (a delay, a retry's backoff) stays pending: drain again with a later `now=`, or give
the test's settings `retry_delay=0`. The job runs in this thread, so a test's mocks and breakpoints reach it;
unlike in a worker there is no timeout and no cancel of a running job.
"""

from __future__ import annotations

import time
from datetime import datetime

from errands.client import Client
from errands.jobs import Job
from errands.worker.child import Targets, run_one
from errands.worker.executor import AttemptResult, job_message, result_of
from errands.worker.identity import claim_for, new_owner, new_token
from errands.worker.outcomes import outcome_for

__all__ = ["drain"]


def drain(client: Client, *, now: datetime | None = None, max_attempts: int = 10_000) -> list[Job]:
    """Run every job due by `now` (default: the database's clock) until none is left, follow-ups included;
    returns each job as its attempt left it, in the order they ran. Stops with RuntimeError after
    `max_attempts` attempts (a chain of follow-ups that never ends)."""
    store, settings = client._store, client.settings
    claim = claim_for(new_owner("testing"), new_token(), settings.lease_timeout)
    targets = Targets(settings.allowed_jobs)
    policy = settings.retry_policy()
    ran: list[Job] = []
    while claimed := store.jobs_claim(claim, 1, now=now):
        if len(ran) >= max_attempts:
            raise RuntimeError(f"drain: more than {max_attempts} attempts; is a chain of follow-ups endless?")
        [job] = claimed
        client.log.executing(job)
        result = _run_inline(job, targets)
        outcome = outcome_for(result, settings, policy, client.log)
        store.jobs_finish([outcome], now=now)
        ran.append(store.job_get(job.id))
    return ran


def _run_inline(job: Job, targets: Targets) -> AttemptResult:
    """The job as a worker's child runs it (errands.worker.child.run_one), here."""
    began = time.monotonic()
    reply = run_one(job_message(job), targets)
    return result_of(job, reply, time.monotonic() - began)
