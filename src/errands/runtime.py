"""How jobs get run, written once for every face (the Client calls these; the CLI reaches them only through it):
run a reserved job here and now, start one in a detached process, run a worker, and the rescue pass that comes
first (worker/orphans.py), which also gives a new detached process to a background job whose process died.

A job run now is inserted pending and reserved to a lease (owner, token, expiry) that only its runner holds:
`run-job`'s own ("run-job:..."), or a detached process's ("spawn:..."). No worker takes it while the lease
lives; the runner claims it by its token and renews the lease while the job, its retries and its follow-ups
run or wait.
"""

from __future__ import annotations

import signal

from errands.jobs import Job, Lease
from errands.logs import JobLog, open_log
from errands.logship import LogShipper
from errands.settings import Settings
from errands.spawn import start_detached
from errands.store import open_store
from errands.store.base import Claim, Store
from errands.worker.executor import Pool
from errands.worker.identity import claim_for, lease_until, new_owner, new_token
from errands.worker.loop import Worker, WorkerOptions
from errands.worker.oneshot import OneShot
from errands.worker.orphans import SPAWN, rescue

RUN_JOB = "run-job"
__all__ = ["RUN_JOB", "SPAWN", "new_claim", "reservation", "run_claimed", "run_worker", "start_in_background"]


def new_claim(kind: str, settings: Settings) -> Claim:
    return claim_for(new_owner(kind), new_token(), settings.lease_timeout)


def reservation(store: Store, claim: Claim) -> Lease:
    """The lease a job is inserted under, on the database's clock."""
    return lease_until(claim, store.now())


def run_claimed(store: Store, settings: Settings, log: JobLog, claim: Claim, job_id: int) -> list[Job]:
    """Run a job reserved to `claim` in this process, with its retries and follow-ups (run-job, the detached
    process); the jobs as they ended, in order. A rescue pass runs first and every rescue_interval after, as
    in a worker: where no worker runs, these passes are the only ones."""

    def rescue_pass() -> None:
        rescue(store, settings, log, claim.owner)

    rescue_pass()
    return OneShot(store, settings, log, claim, maintenance=rescue_pass).run(job_id)


def start_in_background(settings: Settings, log: JobLog, job_id: int, claim: Claim) -> None:
    """A detached process for a job reserved to `claim`; it gets these settings."""
    start_detached(settings, job_id, claim.owner, claim.token)
    log.dispatched(job_id)


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
    log = open_log(settings, sink=LogShipper(store))
    worker = Worker(store, settings, log, options, started_pool=pool)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: worker.request_stop())
    try:
        return worker.run()
    finally:
        log.close()  # its last lines go to the database first
        store.close()
