"""From what a child reported to what the store records and the logs say: one place for both runners."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from errands.errors import TargetNotAllowed
from errands.jobs import AttemptOutcome, ErrorInfo, FollowUp, Job, JobState, Lease, NewJob
from errands.logs import JobLog
from errands.retry import RetryPolicy
from errands.settings import Settings
from errands.store.base import Outcome
from errands.targets import check_allowed
from errands.worker.executor import AttemptResult, Ending


def follow_ups_for(job: Job, result: AttemptResult, settings: Settings, log: JobLog) -> tuple[NewJob, ...]:
    """next_job()'s follow-up, then the head of the job's `then` chain (carrying the rest of the chain);
    each checked against the allow-list, a refused one logged and dropped."""
    steps: list[tuple[FollowUp, tuple[FollowUp, ...]]] = []
    if result.follow_up is not None:
        steps.append((result.follow_up, ()))
    if job.then:
        steps.append((job.then[0], job.then[1:]))
    news = []
    for step, rest in steps:
        try:
            check_allowed(step.target, step.method, settings.allowed_jobs)
        except TargetNotAllowed as refusal:
            log.refused(step.target, step.method, f"follow-up of job {job.id}: {refusal.reason}", job)
            continue
        news.append(
            NewJob(
                step.target,
                step.method,
                args=step.args,
                kwargs=step.kwargs,
                queue=job.queue,
                priority=job.priority,
                max_attempts=settings.max_retries,
                timeout_s=job.timeout_s,
                sensitive=job.sensitive,
                then=rest,
            )
        )
    return tuple(news)


def outcome_for(
    result: AttemptResult,
    settings: Settings,
    policy: RetryPolicy,
    log: JobLog,
    now: datetime,
    reserve: Lease | None = None,
) -> Outcome:
    """Decide where the job goes next, log the step, and return what to record."""
    job = result.job
    base: dict[str, Any] = {
        "job_id": job.id,
        "token": job.lease.token if job.lease else "",
        "attempt": job.attempts,
    }
    if result.ending is Ending.COMPLETED:
        log.completed(job, result.duration_s)
        follow_ups = follow_ups_for(job, result, settings, log)
        return Outcome(
            **base,
            outcome=AttemptOutcome.COMPLETED,
            next_state=JobState.COMPLETED,
            result=result.result,
            follow_ups=follow_ups,
            reserve=reserve,
        )
    if result.ending is Ending.CANCELLED:
        log.cancelled(job)
        return Outcome(**base, outcome=AttemptOutcome.CANCELLED, next_state=JobState.CANCELLED)
    if result.ending is Ending.RELEASED:
        log.info(job, f"Job {job.id} released: back to pending", job.attempts)
        return Outcome(**base, outcome=AttemptOutcome.RELEASED, next_state=JobState.PENDING, reserve=reserve)
    error = result.error or ErrorInfo("Error", "unknown failure")
    if result.ending is Ending.REFUSED:
        log.refused(job.target, job.method, error.message, job)
        log.failed(job, error)
        return Outcome(**base, outcome=AttemptOutcome.FAILED, next_state=JobState.FAILED, error=error)
    if result.ending is Ending.CRASHED:
        return _crashed(base, job, error, settings, log, reserve)
    attempt_outcome = AttemptOutcome.TIMED_OUT if result.ending is Ending.TIMED_OUT else AttemptOutcome.FAILED
    log.attempt_failed(job, error, "timed out" if result.ending is Ending.TIMED_OUT else "failed")
    decision = policy.decide(job, error, now)
    if decision.retry:
        log.retrying(job, decision.delay_s)
        return Outcome(
            **base,
            outcome=attempt_outcome,
            next_state=JobState.PENDING,
            error=error,
            retry_in_s=decision.delay_s,
            reserve=reserve,
        )
    log.failed(job, error)
    return Outcome(**base, outcome=attempt_outcome, next_state=JobState.FAILED, error=error)


def _crashed(
    base: dict[str, Any], job: Job, error: ErrorInfo, settings: Settings, log: JobLog, reserve: Lease | None
) -> Outcome:
    """The job took its process down: a lost attempt, contained by the crash budget."""
    log.attempt_failed(job, error, "lost")
    if job.lost_attempts + 1 >= settings.crash_budget:
        lost = ErrorInfo("WorkerLost", f"worker lost: {error.message}")
        log.failed(job, lost)
        return Outcome(**base, outcome=AttemptOutcome.LOST, next_state=JobState.FAILED, error=lost)
    log.retrying(job, 0.0)
    return Outcome(**base, outcome=AttemptOutcome.LOST, next_state=JobState.PENDING, error=error, reserve=reserve)
