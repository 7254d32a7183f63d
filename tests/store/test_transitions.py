"""The store's job-state changes are a subset of errands.jobs.TRANSITIONS.

Two ways: the guard every conformance test runs under (conftest.py: a trigger refuses any other change),
shown here refusing; and a property test that drives the store through random sequences of calls (claims,
every kind of outcome, stale tokens, cancels, retries, rescues, clocks moved on) and checks every change it
sees between two calls against the table.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from errands.errors import InvalidTransition
from errands.jobs import TRANSITIONS, AttemptOutcome, ErrorInfo, JobState, NewJob
from errands.store import Claim, Outcome, RetryBudget, SqlStore

REFUSED = "not in TRANSITIONS"  # the guard's message (conftest.py)
BOOM = ErrorInfo("RuntimeError", "boom")
# (attempt outcome, next state) pairs a runner may report for a running job
ENDINGS = [
    (AttemptOutcome.COMPLETED, JobState.COMPLETED),
    (AttemptOutcome.FAILED, JobState.PENDING),
    (AttemptOutcome.FAILED, JobState.FAILED),
    (AttemptOutcome.TIMED_OUT, JobState.PENDING),
    (AttemptOutcome.CANCELLED, JobState.CANCELLED),
    (AttemptOutcome.RELEASED, JobState.PENDING),
    (AttemptOutcome.LOST, JobState.PENDING),
    (AttemptOutcome.LOST, JobState.FAILED),
]


def test_the_guard_refuses_a_state_change_outside_the_table(store: SqlStore) -> None:
    job_id = store.job_insert(NewJob("a.B", "m"))
    [job] = store.jobs_claim(Claim("w", "t", 30.0, "host:1"), 1)
    store.jobs_finish([Outcome(job_id, "t", job.attempts, AttemptOutcome.COMPLETED, JobState.COMPLETED)])
    assert JobState.PENDING not in TRANSITIONS[JobState.COMPLETED]
    with pytest.raises(sa.exc.DBAPIError, match=REFUSED), store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE errands_jobs SET status = 'pending' WHERE id = :id"), {"id": job_id})
    assert store.job_get(job_id).status is JobState.COMPLETED


class StoreMachine(RuleBasedStateMachine):
    store: SqlStore  # set by the test, one database for every run

    def __init__(self) -> None:
        super().__init__()
        with self.store.engine.begin() as conn:  # each run from an empty table: the draws mustn't depend on the last
            conn.execute(sa.text("DELETE FROM errands_attempts"))
            conn.execute(sa.text("DELETE FROM errands_jobs"))
        self.ids: list[int] = []
        self.leases: dict[int, tuple[str, int]] = {}  # job id -> (token, attempt) of its latest claim
        self.tokens = 0
        self.now = self.store.now()  # the runs' clock, moved on by hand
        self.seen = self._states()

    def _states(self) -> dict[int, JobState]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, status FROM errands_jobs")).all()
        return {int(row.id): JobState(row.status) for row in rows}

    def _claim(self) -> Claim:
        self.tokens += 1
        return Claim("w", f"t{self.tokens}", 30.0, "host:1")

    @rule(delay_s=st.sampled_from([0.0, 60.0]))
    def enqueue(self, delay_s: float) -> None:
        self.ids.append(self.store.job_insert(NewJob("a.B", "m", delay_s=delay_s, max_attempts=2), now=self.now))

    @rule(limit=st.integers(1, 3))
    def claim(self, limit: int) -> None:
        for job in self.store.jobs_claim(self._claim(), limit, now=self.now):
            self.leases[job.id] = (job.lease.token if job.lease else "", job.attempts)

    @rule(data=st.data())
    def claim_by_id(self, data: st.DataObject) -> None:
        if self.ids:
            job = self.store.job_claim_by_id(data.draw(st.sampled_from(self.ids)), self._claim(), now=self.now)
            if job is not None and job.lease is not None:
                self.leases[job.id] = (job.lease.token, job.attempts)

    @rule(data=st.data(), ending=st.sampled_from(ENDINGS), stale=st.booleans())
    def finish(self, data: st.DataObject, ending: tuple[AttemptOutcome, JobState], stale: bool) -> None:
        if not self.leases:
            return
        job_id = data.draw(st.sampled_from(sorted(self.leases)))
        token, attempt = self.leases[job_id]
        outcome, next_state = ending
        error = None if outcome is AttemptOutcome.COMPLETED else BOOM
        report = Outcome(job_id, "stale" if stale else token, attempt, outcome, next_state, error=error)
        self.store.jobs_finish([report], now=self.now)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        if self.ids:
            try:
                self.store.job_cancel(data.draw(st.sampled_from(self.ids)), now=self.now)
            except InvalidTransition:
                pass

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        if self.ids:
            try:
                self.store.job_retry(data.draw(st.sampled_from(self.ids)), RetryBudget(2), now=self.now)
            except InvalidTransition:
                pass

    @rule(seconds=st.sampled_from([10.0, 45.0, 120.0]), crash_budget=st.integers(1, 3))
    def time_passes_and_the_rescuer_runs(self, seconds: float, crash_budget: int) -> None:
        self.now += timedelta(seconds=seconds)
        self.store.jobs_rescue_expired(crash_budget, now=self.now)

    @rule()
    def renew(self) -> None:
        self.store.leases_renew("w", {job_id: token for job_id, (token, _) in self.leases.items()}, 30.0, now=self.now)

    @invariant()
    def every_change_is_in_the_table(self) -> None:
        states = self._states()
        for job_id, state in states.items():
            before = self.seen.get(job_id)
            if before is None:
                assert state is JobState.PENDING, f"job {job_id} appeared {state}"
            elif before is not state:
                assert state in TRANSITIONS[before], f"job {job_id}: {before} -> {state}"
        self.seen = states


def test_every_state_change_the_store_makes_is_in_the_table(store: SqlStore) -> None:
    StoreMachine.store = store
    run_state_machine_as_test(
        StoreMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
