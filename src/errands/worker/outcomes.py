"""From how an attempt ended to what the store records (decide), and what the logs say of it (log_outcome): one
place for both runners. Deciding is pure; logging reads the decision, and decides nothing.

The vocabulary: the pool reports an AttemptResult, its Ending what the pool saw (refused by the allow-list, the
child crashed...); decide() turns it into an Outcome, the store's write, whose AttemptOutcome is what the
attempt row keeps; the store answers each with a Finished. The budgets' rules are retry.py's.
"""

from __future__ import annotations

from errands.errors import TargetNotAllowed
from errands.jobs import AttemptOutcome, ErrorInfo, FollowUp, Job, JobState, Lease, NewJob
from errands.logs import JobLog
from errands.retry import RetryPolicy, crash_budget_spent
from errands.settings import Settings
from errands.store.base import Outcome
from errands.targets import check_allowed
from errands.worker.executor import AttemptResult, Ending

# what the attempt row records for each way an attempt ends
_RECORDED = {
    Ending.COMPLETED: AttemptOutcome.COMPLETED,
    Ending.FAILED: AttemptOutcome.FAILED,
    Ending.REFUSED: AttemptOutcome.FAILED,
    Ending.TIMED_OUT: AttemptOutcome.TIMED_OUT,
    Ending.CANCELLED: AttemptOutcome.CANCELLED,
    Ending.CRASHED: AttemptOutcome.LOST,
    Ending.RELEASED: AttemptOutcome.RELEASED,
}
_HOW = {Ending.CRASHED: "lost", Ending.TIMED_OUT: "timed out"}  # how attempt_failed words it; else "failed"


def outcome_for(
    result: AttemptResult, settings: Settings, policy: RetryPolicy, log: JobLog, reserve: Lease | None = None
) -> Outcome:
    """Decide where the job goes next, log the step, and return what to record."""
    outcome = decide(result, settings, policy, reserve)
    log_outcome(log, result, outcome, settings)
    return outcome


def decide(result: AttemptResult, settings: Settings, policy: RetryPolicy, reserve: Lease | None = None) -> Outcome:
    """What to record for the attempt. `reserve` keeps a job that goes back to pending (and its follow-ups) for
    that lease's owner (run-job)."""
    job, ending = result.job, result.ending
    token = job.lease.token if job.lease else ""
    recorded = _RECORDED[ending]
    if ending is Ending.COMPLETED:
        follow_ups, _ = screen_follow_ups(job, result, settings)
        completed, value = JobState.COMPLETED, result.result
        return Outcome(job.id, token, job.attempts, recorded, completed, value, follow_ups=follow_ups, reserve=reserve)
    if ending is Ending.CANCELLED:
        return Outcome(job.id, token, job.attempts, recorded, JobState.CANCELLED)
    if ending is Ending.RELEASED:
        return Outcome(job.id, token, job.attempts, recorded, JobState.PENDING, reserve=reserve)
    error = error_of(result)
    if ending is Ending.REFUSED:
        return Outcome(job.id, token, job.attempts, recorded, JobState.FAILED, error=error)
    if ending is Ending.CRASHED:
        if crash_budget_spent(job, settings.crash_budget):
            lost = ErrorInfo("WorkerLost", f"worker lost: {error.message}")
            return Outcome(job.id, token, job.attempts, recorded, JobState.FAILED, error=lost)
        return Outcome(job.id, token, job.attempts, recorded, JobState.PENDING, error=error, reserve=reserve)
    delay_s = policy.retry_in(job, error)
    if delay_s is None:
        return Outcome(job.id, token, job.attempts, recorded, JobState.FAILED, error=error)
    return Outcome(
        job.id, token, job.attempts, recorded, JobState.PENDING, error=error, retry_in_s=delay_s, reserve=reserve
    )


def log_outcome(log: JobLog, result: AttemptResult, outcome: Outcome, settings: Settings) -> None:
    """The log lines of a decided outcome."""
    job, ending = result.job, result.ending
    if ending is Ending.COMPLETED:
        log.completed(job, result.duration_s)
        if result.follow_up is not None or job.then:
            for step, reason in screen_follow_ups(job, result, settings)[1]:
                log.refused(step.target, step.method, f"follow-up of job {job.id}: {reason}", job)
        return
    if ending is Ending.CANCELLED:
        log.cancelled(job)
        return
    if ending is Ending.RELEASED:
        log.info(job, f"Job {job.id} released: back to pending", job.attempts)
        return
    error = error_of(result)
    if ending is Ending.REFUSED:
        log.refused(job.target, job.method, error.message, job)
    else:
        log.attempt_failed(job, error, _HOW.get(ending, "failed"))
    if outcome.next_state is JobState.PENDING:
        log.retrying(job, outcome.retry_in_s or 0.0)
    else:
        log.failed(job, outcome.error or error)


def error_of(result: AttemptResult) -> ErrorInfo:
    return result.error or ErrorInfo("Error", "unknown failure")


def screen_follow_ups(
    job: Job, result: AttemptResult, settings: Settings
) -> tuple[tuple[NewJob, ...], list[tuple[FollowUp, str]]]:
    """next_job()'s follow-up, then the head of the job's `then` chain (carrying the rest of the chain), each
    checked against the allow-list: those to insert, and those refused (with the reason)."""
    steps: list[tuple[FollowUp, tuple[FollowUp, ...]]] = []
    if result.follow_up is not None:
        steps.append((result.follow_up, ()))
    if job.then:
        steps.append((job.then[0], job.then[1:]))
    news: list[NewJob] = []
    refused: list[tuple[FollowUp, str]] = []
    for step, rest in steps:
        try:
            check_allowed(step.target, step.method, settings.allowed_jobs)
        except TargetNotAllowed as refusal:
            refused.append((step, refusal.reason))
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
    return tuple(news), refused
