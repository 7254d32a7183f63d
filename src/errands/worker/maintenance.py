"""Maintenance passes any process may run, one at a time (a named lease in the database): the rescuer."""

from __future__ import annotations

from errands.logs import JobLog
from errands.settings import Settings
from errands.store.base import Rescued, Store

RESCUER_LOCK = "rescuer"


def rescue_once(store: Store, settings: Settings, log: JobLog, owner: str) -> list[Rescued]:
    """Return jobs whose lease expired to pending (attempt: lost), or fail them once the crash budget is
    spent. Skipped (empty) while another process holds the rescuer's lease."""
    if not store.lock_acquire(RESCUER_LOCK, owner, ttl_s=max(settings.rescue_interval * 2, 5.0)):
        return []
    rescued = store.jobs_rescue_expired(settings.crash_budget)
    for item in rescued:
        job = store.job_get(item.job_id)
        if item.failed:
            log.error(job, f"Job {job.id} failed after {job.attempts} attempts: worker lost", item.attempt)
        else:
            log.error(
                job,
                f"Job {job.id} attempt {item.attempt} lost (lease expired): back to pending",
                item.attempt,
            )
    return rescued
