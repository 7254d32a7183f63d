"""How jobs get run, written once for every face (the Client calls these; the CLI reaches them only through it):
run a reserved job here and now, start one in a detached process, run a worker, and the rescue pass that comes
first, which also gives a new detached process to a background job whose process died.

A job run now is inserted pending and reserved to a lease (owner, token, expiry) that only its runner holds:
`run-job`'s own ("run-job:..."), or a detached process's ("spawn:..."). No worker takes it while the lease
lives; the runner claims it by its token and renews the lease while the job, its retries and its follow-ups
run or wait.
"""

from __future__ import annotations

import functools
import signal

from errands.jobs import Job, JobState, Lease
from errands.logs import JobLog
from errands.settings import Settings
from errands.spawn import start_detached
from errands.store import open_store
from errands.store.base import Claim, JobFilter, Rescued, Store
from errands.worker.executor import Pool
from errands.worker.identity import claim_for, lease_until, new_owner, new_token
from errands.worker.loop import Worker, WorkerOptions
from errands.worker.maintenance import rescue_once
from errands.worker.oneshot import OneShot

RUN_JOB = "run-job"
SPAWN = "spawn"  # the owner kind of a detached process's leases
# How many running and pending jobs a rescue pass reads to find lost background jobs (only where some queue
# has no worker that serves every queue): background jobs are few where no worker runs.
ORPHAN_SCAN_LIMIT = 1000


def new_claim(kind: str, settings: Settings) -> Claim:
    return claim_for(new_owner(kind), new_token(), settings.lease_timeout)


def reservation(store: Store, claim: Claim) -> Lease:
    """The lease a job is inserted under, on the database's clock."""
    return lease_until(claim, store.now())


def run_claimed(store: Store, settings: Settings, log: JobLog, claim: Claim, job_id: int) -> list[Job]:
    """Run a job reserved to `claim` in this process, with its retries and follow-ups (run-job, the detached
    process); the jobs as they ended, in order. A rescue pass runs first and every rescue_interval after, as
    in a worker: where no worker runs, these passes are the only ones."""
    rescue_pass = functools.partial(rescue, store, settings, log, claim.owner)
    rescue_pass()
    return OneShot(store, settings, log, claim, maintenance=rescue_pass).run(job_id)


def start_in_background(settings: Settings, log: JobLog, job_id: int, claim: Claim) -> None:
    """A detached process for a job reserved to `claim`; it gets these settings."""
    start_detached(settings, job_id, claim.owner, claim.token)
    log.dispatched(job_id)


# the rescue pass ----------------------------------------------------------------------------------------


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
        claim = new_claim(SPAWN, settings)
    else:
        claim = claim_for(job.lease.owner, job.lease.token, settings.lease_timeout)
        if job.id not in store.leases_renew(claim.owner, {job.id: claim.token}, claim.lease_s):
            return  # claimed or restarted by someone else meanwhile
    log.info(job, f"Job {job.id}: its detached process was lost; starting a new one")
    start_in_background(settings, log, job.id, claim)


# the worker ---------------------------------------------------------------------------------------------


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    """`errands worker`: until SIGTERM or SIGINT (a second one skips the grace), or drained with `burst`.
    Returns the exit code."""
    pool = Pool(options.concurrency, settings.allowed_jobs, settings.max_jobs_per_child)
    pool.start()  # the children import while this process opens the store
    try:
        store = open_store(settings.database_url)
    except BaseException:
        pool.stop()
        pool.close()
        raise
    log = JobLog(settings.log_file, settings.error_log_file)
    worker = Worker(store, settings, log, options, started_pool=pool)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: worker.request_stop())
    try:
        return worker.run()
    finally:
        store.close()
        log.close()
