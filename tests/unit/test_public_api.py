"""The public API: exactly these names, and each one exists."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import errands
from errands.client import JobRequest

EXPECTED = {
    # enqueue and run
    "enqueue",
    "enqueue_many",
    "run_background_job",
    "JobRequest",
    "FollowUp",
    # look and act
    "get_job",
    "cancel_job",
    "retry_job",
    "connect",
    "Client",
    # values
    "Job",
    "JobState",
    "Attempt",
    "AttemptOutcome",
    "Settings",
    "load_settings",
    # errors
    "ErrandsError",
    "ConfigError",
    "StoreError",
    "NotMigrated",
    "StoreUnavailable",
    "InvalidInput",
    "TargetNotAllowed",
    "JobNotFound",
    "InvalidTransition",
}


def test_all_is_exactly_the_public_api() -> None:
    assert set(errands.__all__) == EXPECTED
    assert len(errands.__all__) == len(EXPECTED)  # no duplicates


def test_every_public_name_exists() -> None:
    for name in errands.__all__:
        assert hasattr(errands, name), name


def test_star_import_gives_exactly_the_public_api() -> None:
    namespace: dict[str, object] = {}
    exec("from errands import *", namespace)
    assert set(namespace) - {"__builtins__"} == EXPECTED


def test_errors_form_one_tree() -> None:
    for name in ("ConfigError", "StoreError", "NotMigrated", "InvalidInput", "JobNotFound", "InvalidTransition"):
        assert issubclass(getattr(errands, name), errands.ErrandsError), name
    assert issubclass(errands.NotMigrated, errands.StoreError)
    assert issubclass(errands.TargetNotAllowed, errands.InvalidInput)


def test_the_functions_take_the_documented_arguments() -> None:
    enqueue = inspect.signature(errands.enqueue)
    assert list(enqueue.parameters)[:4] == ["target", "method", "args", "kwargs"]
    for keyword in ("priority", "queue", "delay", "at", "timeout", "max_attempts", "then", "sensitive"):
        assert enqueue.parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, keyword
    # the Laravel runner's call: run_background_job(target, method, params, priority)
    assert list(inspect.signature(errands.run_background_job).parameters)[:4] == [
        "target",
        "method",
        "params",
        "priority",
    ]
    for name in ("get_job", "cancel_job", "retry_job"):
        assert list(inspect.signature(getattr(errands, name)).parameters) == ["job_id"], name


def test_enqueue_passes_each_option_to_its_own_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """By keyword, not by position: with JobRequest's options in another order (and keyword-only, so a positional
    call fails instead of swapping delay and at silently), each value lands in the field of its name."""
    target, method, *options = dataclasses.fields(JobRequest)
    fields: list[Any] = [(target.name, target.type), (method.name, method.type, method.default)]
    fields += [("_", dataclasses.KW_ONLY)] + [(f.name, f.type, f.default) for f in reversed(options)]
    reordered = dataclasses.make_dataclass("JobRequest", fields, frozen=True)
    captured: list[Any] = []

    class Capture:
        def enqueue(self, request: Any) -> int:
            captured.append(request)
            return 1

    monkeypatch.setattr("errands.client.JobRequest", reordered)
    monkeypatch.setattr(errands, "_default", Capture)
    values: dict[str, Any] = {
        "priority": 7,
        "queue": "q",
        "delay": 5.0,
        "at": datetime(2030, 1, 1),
        "timeout": 9.0,
        "max_attempts": 4,
        "then": (("m:f", ""),),
        "sensitive": True,
    }
    errands.enqueue("m:t", "run", [1], {"k": 2}, **values)
    [request] = captured
    given = {"target": "m:t", "method": "run", "args": [1], "kwargs": {"k": 2}, **values}
    assert {name: getattr(request, name) for name in given} == given


def test_the_client_keeps_its_store_to_itself(tmp_path: Path) -> None:
    """The faces go through the Client's operations (prune, workers, run_now, ...), never its store."""
    settings = errands.Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
    )
    client = errands.connect(settings)
    try:
        assert not hasattr(client, "store")
        assert client.workers() == [] and client.prune(0) == 0
    finally:
        client.close()


@pytest.mark.parametrize("then", [None, 5])
def test_enqueue_with_a_then_that_is_no_list_is_invalid_input(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, then: Any
) -> None:
    """errands.enqueue hands `then` to the client as given: the client's check says what is wrong (it was a
    TypeError from tuple(then), before the client saw it)."""
    settings = errands.Settings(
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        allowed_jobs={"m:t": []},
        log_file=tmp_path / "jobs.log",
        error_log_file=tmp_path / "errors.log",
    )
    client = errands.connect(settings)
    monkeypatch.setattr(errands, "_default", lambda: client)
    try:
        with pytest.raises(errands.InvalidInput, match="then"):
            errands.enqueue("m:t", then=then)
        assert client.jobs() == []
    finally:
        client.close()
