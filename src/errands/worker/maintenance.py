"""Maintenance passes any process may run, one at a time (a named lease in the database): the rescuer, and
the pruning of old log lines from the database."""

from __future__ import annotations

from errands.logs import JobLog
from errands.settings import Settings
from errands.store.base import Rescued, Store

RESCUER_LOCK = "rescuer"
LOG_PRUNE_EVERY_S = 3600.0  # how often a worker prunes the log lines kept in the database


def _lock_ttl_s(settings: Settings) -> float:
    return max(settings.rescue_interval * 2, 5.0)


def rescue_once(store: Store, settings: Settings, log: JobLog, owner: str) -> list[Rescued]:
    """Return jobs whose lease expired to pending (attempt: lost), or fail them once the crash budget is
    spent. Skipped (empty) while another process holds the rescuer's lease."""
    if not store.lock_acquire(RESCUER_LOCK, owner, ttl_s=_lock_ttl_s(settings)):
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


def prune_log_lines(store: Store, settings: Settings, log: JobLog, owner: str) -> int | None:
    """Delete the log lines stored more than settings.log_retention ago; how many, or None when another process
    holds the rescuer's lease (it does this; with many workers, one prunes)."""
    if not store.lock_acquire(RESCUER_LOCK, owner, ttl_s=_lock_ttl_s(settings)):
        return None
    pruned = store.log_lines_prune(settings.log_retention)
    if pruned:
        log.info(None, f"Pruned {pruned} log lines older than {settings.log_retention:g}s from the database")
    return pruned
