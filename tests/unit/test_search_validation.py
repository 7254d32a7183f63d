"""search_from_json and check_search: every field checked as enqueue's arguments are; hostile values are one
InvalidInput line, never a traceback or a driver's overflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from errands.checks import int32, queue_name, shown
from errands.client import search_from_json, search_to_json
from errands.errors import InvalidInput
from errands.jobs import JobState
from errands.reports import JobSearch
from errands.search import MAX_ARGS_FILTER_CHARS, MAX_PAGE, check_search


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_a_full_search_round_trips() -> None:
    data = {
        "status": ["failed", "cancelled"],
        "queue": "mail",
        "target": "app.Mailer",
        "text": "timeout",
        "args": {"customer_id": 42},
        "created_after": "2026-01-01T00:00:00.000000Z",
        "created_before": "2026-01-02T00:00:00.000000Z",
        "parent_id": 7,
        "before_id": 100,
        "limit": 20,
    }
    search = search_from_json(data)
    assert search == JobSearch(
        statuses=(JobState.FAILED, JobState.CANCELLED),
        queue="mail",
        target="app.Mailer",
        text="timeout",
        args={"customer_id": 42},
        created_after=datetime(2026, 1, 1),
        created_before=datetime(2026, 1, 2),
        parent_id=7,
        before_id=100,
        limit=20,
    )
    assert search_to_json(search) == data
    assert search_from_json({}) == JobSearch()
    assert search_to_json(JobSearch()) == {}


def test_lenient_forms() -> None:
    assert search_from_json({"status": "failed"}).statuses == (JobState.FAILED,)
    assert search_from_json({"status": ["failed", "failed"]}).statuses == (JobState.FAILED,)
    moment = search_from_json({"created_after": "2026-01-01T05:00:00+05:00"}).created_after
    assert moment == datetime(2026, 1, 1, 0, 0)  # a zone is converted to naive UTC
    aware = datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    assert check_search(JobSearch(created_before=aware)).created_before == datetime(2026, 1, 1)
    assert search_from_json({"args": 0}).args == 0  # a falsy value is still a filter
    assert search_from_json({"args": None}).args is None  # null: no filter


@pytest.mark.parametrize(
    ("data", "names"),
    [
        ({"status": "done"}, "status must be one of"),
        ({"status": 3}, "status must be"),
        ({"status": [None]}, "status must be one of"),
        ({"queue": ""}, "queue"),
        ({"queue": "x" * 101}, "queue"),
        ({"queue": "a\x00b"}, "queue"),
        ({"queue": 5}, "queue"),
        ({"target": ""}, "target"),
        ({"target": "t" * 256}, "target"),
        ({"target": "a\x00"}, "target"),
        ({"target": "\udc80"}, "target"),
        ({"text": ["x"]}, "text"),
        ({"text": "x" * 256}, "text"),
        ({"text": "\x00"}, "text"),
        ({"args": deep(5_000)}, "nest at most"),
        ({"args": {"k": 2**64}}, "64-bit"),
        ({"args": -(2**63) - 1}, "64-bit"),
        ({"args": float("nan")}, "JSON"),
        ({"args": "\x00"}, "NUL"),
        ({"args": {"\x00key": 1}}, "NUL"),
        ({"args": ["\ud800"]}, "Unicode"),
        ({"args": "x" * MAX_ARGS_FILTER_CHARS}, "at most"),
        ({"created_after": "yesterday"}, "ISO-8601"),
        ({"created_after": 1700000000}, "created_after must be a datetime"),
        ({"created_before": "0999-12-31T00:00:00"}, "year 1000"),
        ({"created_before": "0001-01-01T00:00:00+05:00"}, "out of range"),
        ({"parent_id": 0}, "parent_id"),
        ({"parent_id": 2**63}, "parent_id"),
        ({"parent_id": "7"}, "parent_id"),
        ({"before_id": True}, "before_id"),
        ({"before_id": 10**100}, "before_id"),
        ({"before_id": 1.5}, "before_id"),
        ({"limit": 0}, "limit"),
        ({"limit": MAX_PAGE + 1}, "limit"),
        ({"limit": "50"}, "limit"),
        ({"limit": 10**1000}, "limit"),
        ({"colour": "red"}, "unknown search field"),
        ({1: "x"}, "unknown search field"),
    ],
    ids=lambda value: shown(value, 40),
)
def test_hostile_values_are_one_clear_line(data: dict[Any, Any], names: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        search_from_json(data)
    message = str(refused.value)
    assert names in message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize("data", [None, [], "status=failed", 42])
def test_a_search_is_an_object(data: Any) -> None:
    with pytest.raises(InvalidInput, match="JSON object"):
        search_from_json(data)


def test_check_search_takes_only_a_job_search() -> None:
    with pytest.raises(InvalidInput, match="JobSearch"):
        check_search({"queue": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="statuses"):
        check_search(JobSearch(statuses="failed"))  # type: ignore[arg-type]
    assert check_search(JobSearch(created_after=datetime(2026, 1, 1, tzinfo=UTC))).created_after == datetime(2026, 1, 1)


@pytest.mark.parametrize(
    "value", [10**5000, -(10**5000), deep(5_000), {"k": deep(5_000)}], ids=["big", "-big", "deep", "obj"]
)
def test_error_messages_survive_huge_ints_and_deep_lists(value: Any) -> None:
    """repr() of a 5,000-digit int raises ValueError, of a list nested 5,000 deep RecursionError: the message
    names the value's kind instead (enqueue's priority and queue had this, found here)."""
    for check in (lambda: int32("priority", value), lambda: queue_name(value)):
        with pytest.raises(InvalidInput) as refused:
            check()
        assert "integer of" in str(refused.value) or "items" in str(refused.value)
    with pytest.raises(InvalidInput):
        search_from_json({"limit": value, "text": value})
