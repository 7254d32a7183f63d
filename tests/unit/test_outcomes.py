"""outcomes.decide: how an attempt ended -> what the store records. Pure: no log, no database, no clock."""

from __future__ import annotations

import pytest

from errands.jobs import AttemptOutcome, ErrorInfo, FollowUp, JobState, Lease
from errands.retry import RetryPolicy
from errands.settings import Settings
from errands.worker.executor import AttemptResult, Ending
from errands.worker.outcomes import decide, screen_follow_ups
from factories import MOMENT, make_job

BOOM = ErrorInfo("RuntimeError", "boom")
SETTINGS = Settings(allowed_jobs={"ok.Job": ["run"]}, crash_budget=2)
POLICY = RetryPolicy(delay_s=5, jitter=False)
RESERVE = Lease("run-job", "r1", MOMENT)


def ended(ending: Ending, **job: object) -> AttemptResult:
    error = None if ending in (Ending.COMPLETED, Ending.CANCELLED, Ending.RELEASED) else BOOM
    return AttemptResult(make_job(lease=Lease("w", "t1", MOMENT), **job), ending, 0.5, error=error)


@pytest.mark.parametrize(
    ("ending", "recorded", "next_state"),
    [
        (Ending.COMPLETED, AttemptOutcome.COMPLETED, JobState.COMPLETED),
        (Ending.FAILED, AttemptOutcome.FAILED, JobState.PENDING),
        (Ending.TIMED_OUT, AttemptOutcome.TIMED_OUT, JobState.PENDING),
        (Ending.REFUSED, AttemptOutcome.FAILED, JobState.FAILED),  # never retried
        (Ending.CANCELLED, AttemptOutcome.CANCELLED, JobState.CANCELLED),
        (Ending.CRASHED, AttemptOutcome.LOST, JobState.PENDING),
        (Ending.RELEASED, AttemptOutcome.RELEASED, JobState.PENDING),
    ],
)
def test_each_ending_is_recorded_as_one_attempt_outcome(
    ending: Ending, recorded: AttemptOutcome, next_state: JobState
) -> None:
    outcome = decide(ended(ending, attempts=1, max_attempts=3), SETTINGS, POLICY)
    assert (outcome.outcome, outcome.next_state) == (recorded, next_state)
    assert (outcome.job_id, outcome.token, outcome.attempt) == (7, "t1", 1)


def test_a_failure_retries_after_the_policys_delay_until_the_budget_is_spent() -> None:
    retry = decide(ended(Ending.FAILED, attempts=2, max_attempts=3), SETTINGS, POLICY, RESERVE)
    assert (retry.next_state, retry.retry_in_s, retry.error, retry.reserve) == (JobState.PENDING, 5, BOOM, RESERVE)
    last = decide(ended(Ending.FAILED, attempts=3, max_attempts=3), SETTINGS, POLICY, RESERVE)
    assert (last.next_state, last.retry_in_s, last.error, last.reserve) == (JobState.FAILED, None, BOOM, None)


def test_a_crash_spends_the_crash_budget_not_the_retry_budget() -> None:
    first = decide(ended(Ending.CRASHED, attempts=3, max_attempts=3, lost_attempts=0), SETTINGS, POLICY)
    assert first.next_state is JobState.PENDING  # the retry budget is spent, yet it goes again
    second = decide(ended(Ending.CRASHED, attempts=4, max_attempts=4, lost_attempts=1), SETTINGS, POLICY)
    assert second.next_state is JobState.FAILED
    assert second.error == ErrorInfo("WorkerLost", "worker lost: boom")


def test_follow_ups_outside_the_allow_list_are_dropped_and_reported() -> None:
    then = (FollowUp("ok.Job", "run"), FollowUp("ok.Job", "later"))
    result = AttemptResult(make_job(then=then), Ending.COMPLETED, 0.1, follow_up=FollowUp("evil.Job", "run"))
    news, refused = screen_follow_ups(result.job, result, SETTINGS)
    assert [(new.target, new.method, new.then) for new in news] == [("ok.Job", "run", then[1:])]
    assert [step.target for step, _ in refused] == ["evil.Job"]
    assert decide(result, SETTINGS, POLICY).follow_ups == news
