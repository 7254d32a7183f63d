"""The rescue pass of every process that runs jobs: maintenance.rescue_once, then a new detached process for
each background job left with nobody to run it (docs/architecture.md, run_background_job)."""

from __future__ import annotations

from errands.jobs import Job, JobState
from errands.logs import JobLog
from errands.settings import Settings
from errands.spawn import start_detached
from errands.store.base import JobFilter, Rescued, Store
from errands.worker.identity import claim_for, new_owner, new_token
from errands.worker.maintenance import rescue_once

SPAWN = "spawn"  # the owner kind of a detached process's leases: "spawn:host:pid:hex"
# How many running and pending jobs a pass reads to find lost background jobs (only while no live worker
# serves every queue): background jobs are few where no worker runs.
ORPHAN_SCAN_LIMIT = 1000


def rescue(store: Store, settings: Settings, log: JobLog, owner: str) -> list[Rescued]:
    """One rescuer pass (maintenance.rescue_once), then a new detached process for each background job left
    with nobody to run it: its detached process died (the "spawn:" lease expired, running or while it waited
    for the job to be due) and no live worker serves its queue. Without this, with the default dispatch and
    no worker, such a job would wait for a worker that never comes."""
    live = store.workers_list(alive_within_s=settings.lease_timeout)
    if any(not worker.queues for worker in live):  # a worker takes every queue: it takes these too
        return rescue_once(store, settings, log, owner)
    running = _background_jobs(store, JobState.RUNNING)  # read before the rescue clears their leases
    rescued = rescue_once(store, settings, log, owner)
    back = {item.job_id for item in rescued if not item.failed}
    now = store.now()
    lost = [job for job in running if job.id in back]
    waiting = [job for job in _background_jobs(store, JobState.PENDING) if job.lease and job.lease.expires_at < now]
    for job in lost + waiting:
        # (a job under this process's own lease is the one it is about to run)
        if job.lease and job.lease.owner != owner and not any(worker.serves(job.queue) for worker in live):
            _restart(store, settings, log, job)
    return rescued


def _background_jobs(store: Store, status: JobState) -> list[Job]:
    found = store.jobs_list(JobFilter(status=status, limit=ORPHAN_SCAN_LIMIT))
    return [job for job in found if job.lease is not None and job.lease.owner.startswith(f"{SPAWN}:")]


def _restart(store: Store, settings: Settings, log: JobLog, job: Job) -> None:
    """A rescued job (pending, unreserved, due now) is claimed at once by the new process. One still waiting
    under its lapsed reservation gets that reservation back first (renewed, so it is reserved again, as
    before), and the new process holds it under the same owner and token."""
    if job.lease is None or job.status is JobState.RUNNING:  # (the status read before the rescue)
        claim = claim_for(new_owner(SPAWN), new_token(), settings.lease_timeout)
    else:
        claim = claim_for(job.lease.owner, job.lease.token, settings.lease_timeout)
        if job.id not in store.leases_renew(claim.owner, {job.id: claim.token}, claim.lease_s):
            return  # claimed or restarted by someone else meanwhile
    log.info(job, f"Job {job.id}: its detached process was lost; starting a new one")
    start_detached(settings, job.id, claim.owner, claim.token)
    log.dispatched(job.id)
