"""After a failed or lost attempt: retry (when) or fail. Pure; randomness is injected.

Two budgets, each ruled here once: the retry budget (RetryPolicy, for attempts that failed or timed out) and
the crash budget (crash_budget_spent, for attempts lost with their process, whoever notices: the worker whose
child died, or the rescuer that finds a lease expired).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from errands.jobs import ErrorInfo, Job


class Backoff(StrEnum):
    FIXED = "fixed"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class RetryPolicy:
    delay_s: float = 10.0
    backoff: Backoff = Backoff.FIXED
    max_delay_s: float = 3600.0
    jitter: bool = True
    # exception class path ("ValueError", "sqlalchemy.exc.OperationalError") -> attempts in all for that type
    exception_attempts: Mapping[str, int] = field(default_factory=dict)

    def attempts_allowed(self, job: Job, error: ErrorInfo) -> int:
        """Attempts allowed in the job's current budget for this error: the job's own max_attempts when it was
        set for the job, else the rule of the most specific class in the exception's MRO, else the default."""
        if not job.attempts_pinned:
            for name in error.mro:
                if name in self.exception_attempts:
                    return self.exception_attempts[name]
        return job.budget

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based, within the budget)."""
        if self.backoff is Backoff.FIXED:
            return float(self.delay_s)
        # a float power, its exponent capped: delay_s * 2 ** 1100 (an int) can't become a float (OverflowError),
        # while a float product too large is inf, which the cap brings back to max_delay_s
        base = float(min(self.max_delay_s, self.delay_s * 2.0 ** min(max(0, attempt - 1), 1023)))
        if not self.jitter:
            return base
        # "equal jitter": at least half the step, so retries still spread out without collapsing to zero
        return float(base / 2 + (rng or random).uniform(0, base / 2))

    def retry_in(self, job: Job, error: ErrorInfo, rng: random.Random | None = None) -> float | None:
        """Seconds until the next attempt, or None: the budget is spent, the job fails. `job` is the row as it
        was claimed: its attempts include the one that just failed."""
        if job.charged_attempts >= self.attempts_allowed(job, error):
            return None
        return self.delay_for(job.charged_attempts, rng)


def crash_budget_spent(job: Job, crash_budget: int) -> bool:
    """Whether losing the attempt `job` is running (its process died, or its lease expired) fails the job:
    the crash budget counts lost attempts apart from the retry budget, which they don't spend."""
    return job.lost_attempts + 1 >= crash_budget


def exception_names(exc: BaseException) -> tuple[str, ...]:
    """The qualified names of an exception's classes, most specific first; builtins by their short name."""
    names = []
    for klass in type(exc).__mro__:
        if klass is object:
            continue
        names.append(
            klass.__qualname__ if klass.__module__ == "builtins" else f"{klass.__module__}.{klass.__qualname__}"
        )
    return tuple(names)
