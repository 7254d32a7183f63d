"""The public API: exactly these names, and each one exists."""

from __future__ import annotations

import inspect

import errands

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
    # the seed's call: run_background_job(target, method, params, priority)
    assert list(inspect.signature(errands.run_background_job).parameters)[:4] == [
        "target",
        "method",
        "params",
        "priority",
    ]
    for name in ("get_job", "cancel_job", "retry_job"):
        assert list(inspect.signature(getattr(errands, name)).parameters) == ["job_id"], name
