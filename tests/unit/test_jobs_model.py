"""The job model: the transition table, the JSON contract, redaction of sensitive jobs."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

import factories
from errands.clock import iso
from errands.jobs import (
    REDACTED,
    TRANSITIONS,
    Attempt,
    AttemptOutcome,
    FollowUp,
    Job,
    JobState,
    can_transition,
    dumps,
)

CREATED = datetime(2026, 3, 4, 5, 6, 7, 890123)
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")

P, R, C, F, X = JobState.PENDING, JobState.RUNNING, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED

DOCUMENTED_EDGES = {
    (P, R),  # claimed
    (P, X),  # cancelled before it ran
    (R, C),  # the attempt returned
    (R, P),  # retry, lost lease, released at shutdown
    (R, F),  # budget spent
    (R, X),  # cancel requested and the child stopped
    (F, P),  # manual retry
    (X, P),  # manual retry
}


def make_job(**overrides: Any) -> Job:
    """The job these tests render: completed on its second attempt, with times to the microsecond."""
    fields: dict[str, Any] = {
        "queue": "emails",
        "kwargs": {"greeting": "hi"},
        "priority": 2,
        "status": JobState.COMPLETED,
        "attempts": 2,
        "scheduled_at": datetime(2026, 3, 4, 5, 6, 7),
        "created_at": CREATED,
        "started_at": datetime(2026, 3, 4, 5, 6, 8, 1),
        "finished_at": datetime(2026, 3, 4, 5, 6, 9, 999999),
        "timeout_s": 30.0,
        "result": {"processed": ["test1", "test2"]},
        "parent_id": 3,
    }
    return factories.make_job(**{**fields, **overrides})


# transitions --------------------------------------------------------------------------------------------


def test_transition_table_is_exactly_the_documented_edges() -> None:
    edges = {(src, dst) for src, targets in TRANSITIONS.items() for dst in targets}
    assert edges == DOCUMENTED_EDGES
    assert set(TRANSITIONS) == set(JobState)


def test_completed_is_final() -> None:
    assert TRANSITIONS[C] == frozenset()
    assert not any(can_transition(C, to) for to in JobState)


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(JobState, JobState)))
def test_can_transition_agrees_with_the_edges(src: JobState, dst: JobState) -> None:
    assert can_transition(src, dst) is ((src, dst) in DOCUMENTED_EDGES)


def test_no_state_moves_to_itself_and_nothing_skips_running_to_finish() -> None:
    for state in JobState:
        assert not can_transition(state, state)
    assert not can_transition(P, C)
    assert not can_transition(P, F)
    assert not can_transition(F, R)


def test_the_states_and_outcomes_by_value() -> None:
    assert [s.value for s in JobState] == ["pending", "running", "completed", "failed", "cancelled"]
    assert {o.value for o in AttemptOutcome} == {"completed", "failed", "timed_out", "lost", "cancelled", "released"}


# to_json ------------------------------------------------------------------------------------------------


def test_to_json_keys_are_the_contract() -> None:
    # docs/cli.md: keys are only ever added, never renamed or removed
    out = make_job().to_json()
    assert factories.JOB_JSON_KEYS | {"timeout", "result", "sensitive", "cancel_requested"} <= set(out)
    json.dumps(out)  # plain JSON values only


def test_to_json_values() -> None:
    out = make_job().to_json()
    assert out["id"] == 7
    assert out["queue"] == "emails"
    assert out["target"] == "examples.jobs.SampleJob"
    assert out["method"] == "process"
    assert out["args"] == ["test1", "test2"]
    assert out["kwargs"] == {"greeting": "hi"}
    assert out["status"] == "completed"
    assert out["attempts"] == 2 and out["max_attempts"] == 3
    assert out["parent_id"] == 3
    assert out["result"] == {"processed": ["test1", "test2"]}
    assert out["timeout"] == 30.0


def test_times_are_iso_8601_with_microseconds_and_z() -> None:
    out = make_job().to_json()
    for key in ("scheduled_at", "created_at", "started_at", "finished_at"):
        assert ISO_Z.match(out[key]), (key, out[key])
    assert out["created_at"] == "2026-03-04T05:06:07.890123Z"
    assert out["scheduled_at"] == "2026-03-04T05:06:07.000000Z"  # whole seconds keep their microseconds
    assert out["started_at"] == "2026-03-04T05:06:08.000001Z"
    assert out["finished_at"] == "2026-03-04T05:06:09.999999Z"


def test_unset_times_are_null() -> None:
    out = make_job(started_at=None, finished_at=None, status=JobState.PENDING).to_json()
    assert out["started_at"] is None and out["finished_at"] is None


def test_iso_of_none_and_of_a_whole_second() -> None:
    assert iso(None) is None
    assert iso(datetime(2026, 1, 1)) == "2026-01-01T00:00:00.000000Z"


def test_sensitive_jobs_redact_args_kwargs_and_result() -> None:
    job = make_job(sensitive=True, args=("card", 4242), kwargs={"pin": "1234", "cvv": "999"})
    out = job.to_json()
    assert out["args"] == [REDACTED, REDACTED]
    assert out["kwargs"] == {"pin": REDACTED, "cvv": REDACTED}
    assert out["result"] == REDACTED
    assert out["sensitive"] is True
    assert "1234" not in json.dumps(out) and "4242" not in json.dumps(out)
    # the job itself keeps the real values for the child to run
    assert job.args == ("card", 4242)


def test_sensitive_job_without_a_result_shows_null() -> None:
    assert make_job(sensitive=True, result=None).to_json()["result"] is None


def test_non_sensitive_jobs_show_their_arguments() -> None:
    assert make_job().shown_args() == (["test1", "test2"], {"greeting": "hi"})


# small values -------------------------------------------------------------------------------------------


def test_budget_and_charged_attempts() -> None:
    job = make_job(attempts=6, uncharged_attempts=2, max_attempts=7)
    assert job.charged_attempts == 4
    assert job.budget == 5


def test_display_name() -> None:
    assert make_job().display_name == "examples.jobs.SampleJob::process"
    assert make_job(target="examples.jobs:add", method="").display_name == "examples.jobs:add"


def test_follow_up_json_round_trip() -> None:
    step = FollowUp("examples.jobs.SampleJob", "send_email", ("a@example.com",), {"subject": "hi"})
    raw = json.loads(json.dumps(step.to_json()))
    assert raw == {
        "target": "examples.jobs.SampleJob",
        "method": "send_email",
        "args": ["a@example.com"],
        "kwargs": {"subject": "hi"},
    }
    assert FollowUp.from_json(raw) == step
    assert FollowUp.from_json({"target": "examples.jobs:add"}) == FollowUp("examples.jobs:add", "")


def test_attempt_to_json() -> None:
    attempt = Attempt(7, 2, CREATED, None, None, None, None, None, "host:1")
    assert attempt.to_json() == {
        "number": 2,
        "started_at": "2026-03-04T05:06:07.890123Z",
        "finished_at": None,
        "outcome": None,
        "error_type": None,
        "error_message": None,
        "traceback": None,
        "worker": "host:1",
    }
    done = Attempt(7, 2, CREATED, CREATED, AttemptOutcome.TIMED_OUT, "JobTimeout", "late", "tb", "host:1")
    assert done.to_json()["outcome"] == "timed_out"


def test_dumps_is_compact_and_stringifies_what_json_cannot_hold() -> None:
    assert dumps({"a": [1, 2]}) == '{"a":[1,2]}'
    assert json.loads(dumps({"n": Decimal("1.5"), "when": datetime(2026, 1, 1)})) == {
        "n": "1.5",
        "when": "2026-01-01 00:00:00",
    }
