"""RetryPolicy.retry_in, crash_budget_spent and exception_names: pure logic, a Job built by hand, randomness seeded."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
import sqlalchemy.exc
from hypothesis import given
from hypothesis import strategies as st

from errands.jobs import ErrorInfo
from errands.retry import Backoff, RetryPolicy, crash_budget_spent, exception_names
from factories import make_job


def error_of(exc: BaseException) -> ErrorInfo:
    names = exception_names(exc)
    return ErrorInfo(names[0], str(exc), None, names)


BOOM = error_of(RuntimeError("boom"))


class AppError(Exception):
    pass


class SpecificAppError(AppError, ValueError):
    pass


def operational_error() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server has gone away"))


# fixed and exponential delays ---------------------------------------------------------------------------


def test_fixed_delay_retries_after_the_delay() -> None:
    policy = RetryPolicy(delay_s=7.5, backoff=Backoff.FIXED)
    for attempts in (1, 2):
        assert policy.retry_in(make_job(attempts=attempts), BOOM) == 7.5


def test_exponential_without_jitter_doubles_per_attempt_and_is_capped() -> None:
    policy = RetryPolicy(delay_s=10, backoff=Backoff.EXPONENTIAL, max_delay_s=50, jitter=False)
    job = make_job(max_attempts=10)
    delays = [policy.retry_in(replace(job, attempts=n), BOOM) for n in range(1, 6)]
    assert delays == [10, 20, 40, 50, 50]


def test_exponential_with_seeded_jitter_is_reproducible_and_within_half_to_full_step() -> None:
    policy = RetryPolicy(delay_s=10, backoff=Backoff.EXPONENTIAL, max_delay_s=1000, jitter=True)
    job = make_job(attempts=3, max_attempts=10)  # step 10 * 2**2 = 40
    first = policy.retry_in(job, BOOM, random.Random(42))
    again = policy.retry_in(job, BOOM, random.Random(42))
    other = policy.retry_in(job, BOOM, random.Random(7))
    assert first is not None and other is not None
    assert first == again
    assert first != other  # the jitter really depends on the random source
    for delay in (first, other):
        assert 20 <= delay <= 40


def test_exponential_jitter_never_exceeds_max_delay() -> None:
    policy = RetryPolicy(delay_s=10, backoff=Backoff.EXPONENTIAL, max_delay_s=25, jitter=True)
    rng = random.Random(1)
    delays = [policy.delay_for(attempt, rng) for attempt in range(1, 40) for _ in range(5)]
    assert max(delays) <= 25
    assert min(delays[10:]) >= 12.5  # from attempt 3 on the step is capped at 25: never below half of it


def test_exponential_delay_for_a_huge_attempt_number_is_the_cap() -> None:
    # 10.0 * 2 ** 1100 cannot become a float: the policy must still answer with its cap
    policy = RetryPolicy(delay_s=10.0, backoff=Backoff.EXPONENTIAL, max_delay_s=3600.0, jitter=False)
    assert policy.delay_for(1101) == 3600.0
    assert RetryPolicy(delay_s=0.0, backoff=Backoff.EXPONENTIAL).delay_for(5000) == 0.0


# the budget ---------------------------------------------------------------------------------------------


def test_budget_exhausted_does_not_retry() -> None:
    policy = RetryPolicy()
    assert policy.retry_in(make_job(attempts=2, max_attempts=3), BOOM) is not None
    assert policy.retry_in(make_job(attempts=3, max_attempts=3), BOOM) is None


def test_single_attempt_job_never_retries() -> None:
    assert RetryPolicy().retry_in(make_job(attempts=1, max_attempts=1), BOOM) is None


def test_uncharged_attempts_do_not_count_against_the_budget() -> None:
    # five attempts so far, two of them lost or released: the store grew max_attempts by those two
    policy = RetryPolicy(delay_s=1)
    job = make_job(attempts=4, uncharged_attempts=2, max_attempts=5)
    assert job.charged_attempts == 2
    assert job.budget == 3
    assert policy.retry_in(job, BOOM) is not None
    assert policy.retry_in(replace(job, attempts=5), BOOM) is None


def test_after_a_manual_retry_the_earlier_budget_is_not_charged() -> None:
    # failed after 3 of 3, retried by hand with a fresh budget of 3: attempts 4 and 5 may fail and retry
    job = make_job(attempts=4, uncharged_attempts=3, max_attempts=6)
    policy = RetryPolicy(delay_s=1)
    assert policy.retry_in(job, BOOM) is not None
    assert policy.retry_in(replace(job, attempts=5), BOOM) is not None
    assert policy.retry_in(replace(job, attempts=6), BOOM) is None


def test_exponential_step_counts_charged_attempts_only() -> None:
    policy = RetryPolicy(delay_s=10, backoff=Backoff.EXPONENTIAL, max_delay_s=10_000, jitter=False)
    job = make_job(attempts=5, uncharged_attempts=4, max_attempts=8)  # the first charged attempt
    assert policy.retry_in(job, BOOM) == 10


# per-exception rules ------------------------------------------------------------------------------------


def test_exception_names_builtins_short_and_others_module_qualified() -> None:
    assert exception_names(ValueError("x")) == ("ValueError", "Exception", "BaseException")
    names = exception_names(operational_error())
    assert names[0] == "sqlalchemy.exc.OperationalError"
    assert "sqlalchemy.exc.DBAPIError" in names
    assert names[-2:] == ("Exception", "BaseException")
    assert "object" not in names
    assert exception_names(SpecificAppError())[:3] == (
        f"{__name__}.SpecificAppError",
        f"{__name__}.AppError",
        "ValueError",
    )


def test_rule_for_a_builtin_by_its_short_name() -> None:
    policy = RetryPolicy(exception_attempts={"ValueError": 1})
    job = make_job(attempts=1, max_attempts=3)
    assert policy.retry_in(job, error_of(ValueError("bad"))) is None
    assert policy.retry_in(job, BOOM) is not None  # RuntimeError: the job's own budget


def test_rule_matches_a_subclass_through_its_mro() -> None:
    policy = RetryPolicy(exception_attempts={"ValueError": 1})
    job = make_job(attempts=1, max_attempts=3)
    assert policy.retry_in(job, error_of(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))) is None


def test_rule_for_a_module_qualified_class_with_a_real_sqlalchemy_error() -> None:
    policy = RetryPolicy(exception_attempts={"sqlalchemy.exc.OperationalError": 5})
    error = error_of(operational_error())
    assert policy.retry_in(make_job(attempts=4, max_attempts=3), error) is not None
    assert policy.retry_in(make_job(attempts=5, max_attempts=3), error) is None
    # the bare class name is not the qualified one: no rule, the job's budget of 3 applies
    bare = RetryPolicy(exception_attempts={"OperationalError": 5})
    assert bare.retry_in(make_job(attempts=3, max_attempts=3), error) is None


def test_most_specific_class_in_the_mro_wins() -> None:
    policy = RetryPolicy(
        exception_attempts={
            "Exception": 2,
            "ValueError": 6,
            f"{__name__}.AppError": 4,
            f"{__name__}.SpecificAppError": 1,
        }
    )
    job = make_job(attempts=1, max_attempts=3)
    assert policy.attempts_allowed(job, error_of(SpecificAppError())) == 1
    assert policy.attempts_allowed(job, error_of(AppError())) == 4
    assert policy.attempts_allowed(job, error_of(ValueError())) == 6
    assert policy.attempts_allowed(job, error_of(KeyError())) == 2  # LookupError -> Exception
    assert policy.attempts_allowed(job, error_of(KeyboardInterrupt())) == 3  # BaseException only: default
    assert policy.retry_in(job, error_of(SpecificAppError())) is None
    assert policy.retry_in(job, error_of(AppError())) is not None


def test_pinned_attempts_ignore_per_exception_rules() -> None:
    policy = RetryPolicy(exception_attempts={"ValueError": 1, "RuntimeError": 10})
    pinned = make_job(attempts=1, max_attempts=3, attempts_pinned=True)
    assert policy.attempts_allowed(pinned, error_of(ValueError())) == 3
    assert policy.retry_in(pinned, error_of(ValueError())) is not None
    assert policy.retry_in(replace(pinned, attempts=3), BOOM) is None
    unpinned = replace(pinned, attempts_pinned=False)
    assert policy.retry_in(unpinned, error_of(ValueError())) is None
    assert policy.retry_in(replace(unpinned, attempts=3), BOOM) is not None


def test_rule_counts_charged_attempts_within_the_current_budget() -> None:
    policy = RetryPolicy(exception_attempts={"ValueError": 2})
    job = make_job(attempts=3, uncharged_attempts=2, max_attempts=5)  # one charged attempt
    assert policy.retry_in(job, error_of(ValueError())) is not None
    assert policy.retry_in(replace(job, attempts=4), error_of(ValueError())) is None


# properties ---------------------------------------------------------------------------------------------


@given(
    delay=st.floats(min_value=0, max_value=1e6, allow_nan=False),
    max_delay=st.floats(min_value=0, max_value=1e7, allow_nan=False),
    attempt=st.integers(min_value=1, max_value=2000),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_property_jittered_exponential_delay_is_within_half_and_full_step(
    delay: float, max_delay: float, attempt: int, seed: int
) -> None:
    policy = RetryPolicy(delay_s=delay, backoff=Backoff.EXPONENTIAL, max_delay_s=max_delay, jitter=True)
    base = RetryPolicy(delay_s=delay, backoff=Backoff.EXPONENTIAL, max_delay_s=max_delay, jitter=False)
    step = base.delay_for(attempt)
    got = policy.delay_for(attempt, random.Random(seed))
    assert step <= max_delay
    assert step / 2 <= got <= step
    assert got <= max_delay


@given(
    attempts=st.integers(min_value=1, max_value=50),
    uncharged=st.integers(min_value=0, max_value=20),
    max_attempts=st.integers(min_value=1, max_value=30),
    rule=st.one_of(st.none(), st.integers(min_value=1, max_value=30)),
    pinned=st.booleans(),
    backoff=st.sampled_from(list(Backoff)),
)
def test_property_never_retries_once_charged_attempts_reach_the_allowed(
    attempts: int, uncharged: int, max_attempts: int, rule: int | None, pinned: bool, backoff: Backoff
) -> None:
    uncharged = min(uncharged, attempts - 1)  # the attempt that just failed is always charged
    rules = {} if rule is None else {"ValueError": rule}
    policy = RetryPolicy(delay_s=5, backoff=backoff, exception_attempts=rules)
    job = make_job(
        attempts=attempts, uncharged_attempts=uncharged, max_attempts=max_attempts + uncharged, attempts_pinned=pinned
    )
    error = error_of(ValueError("x"))
    allowed = max_attempts if (rule is None or pinned) else rule
    assert policy.attempts_allowed(job, error) == allowed
    delay = policy.retry_in(job, error, random.Random(0))
    assert (delay is not None) is (job.charged_attempts < allowed)
    assert delay is None or delay >= 0


@pytest.mark.parametrize("backoff", list(Backoff))
def test_retry_is_never_scheduled_in_the_past(backoff: Backoff) -> None:
    policy = RetryPolicy(delay_s=0, backoff=backoff)
    assert policy.retry_in(make_job(), BOOM, random.Random(3)) == 0


# the crash budget ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lost_before", "budget", "spent"), [(0, 1, True), (0, 2, False), (1, 2, True), (2, 5, False)])
def test_the_crash_budget_is_spent_by_the_loss_that_reaches_it(lost_before: int, budget: int, spent: bool) -> None:
    # the job as it was claimed: the attempt being lost is not counted in lost_attempts yet
    assert crash_budget_spent(make_job(lost_attempts=lost_before), budget) is spent
