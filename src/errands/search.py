"""A JobSearch checked, and its JSON form (pure): what the API's query or body and a bulk run's stored filter
become, and back.

Every field is checked as enqueue's arguments are (errands.checks): lengths, 64-bit ids, the args filter's
nesting, size and text, naive-UTC times. A bad value raises InvalidInput naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from errands import checks
from errands.clock import iso
from errands.errors import InvalidInput
from errands.jobs import JobState, dumps
from errands.reports import NO_ARGS_FILTER, JobSearch

MAX_PAGE = 500
MAX_TEXT = 255  # a substring of a target (255) or of an error message
MAX_ARGS_FILTER_CHARS = 4_096  # the args filter as JSON: a containment test, not a document
KEYS = (
    "status",
    "queue",
    "target",
    "text",
    "args",
    "created_after",
    "created_before",
    "parent_id",
    "before_id",
    "limit",
)


def check_search(search: JobSearch) -> JobSearch:
    """`search` with its values normalized (statuses deduplicated, times naive UTC), or InvalidInput."""
    if not isinstance(search, JobSearch):
        raise InvalidInput(f"a search must be a JobSearch, got {type(search).__name__}")
    return replace(
        search,
        statuses=_statuses(search.statuses),
        queue=None if search.queue is None else checks.queue_name(search.queue),
        target=_optional_text("target", search.target, checks.MAX_TARGET),
        text=_optional_text("text", search.text, MAX_TEXT),
        args=_args_filter(search.args),
        created_after=_optional_time("created_after", search.created_after),
        created_before=_optional_time("created_before", search.created_before),
        parent_id=_optional_id("parent_id", search.parent_id),
        before_id=_optional_id("before_id", search.before_id),
        limit=_limit(search.limit),
    )


def search_from_json(data: Mapping[str, Any]) -> JobSearch:
    """A JobSearch from its JSON form (search_to_json's): `status` a state or a list of them, times ISO-8601
    (a zone is converted to UTC; none means UTC), `args` the JSON value to look for. Unknown keys are refused."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"a search is a JSON object, got {type(data).__name__}")
    unknown = sorted(str(key) for key in data if key not in KEYS)
    if unknown:
        raise InvalidInput(f"unknown search field {checks.shown(unknown[0], 80)}: the fields are {', '.join(KEYS)}")
    status = data.get("status")
    statuses = () if status is None else (status,) if isinstance(status, str) else status
    if not isinstance(statuses, list | tuple):
        raise InvalidInput(f"status must be a state or a list of states, got {type(status).__name__}")
    search = JobSearch(
        statuses=tuple(statuses),
        queue=data.get("queue"),
        target=data.get("target"),
        text=data.get("text"),
        args=data.get("args", NO_ARGS_FILTER),
        created_after=_parse_time("created_after", data.get("created_after")),
        created_before=_parse_time("created_before", data.get("created_before")),
        parent_id=data.get("parent_id"),
        before_id=data.get("before_id"),
        limit=data.get("limit", JobSearch.limit),
    )
    return check_search(search)


def search_to_json(search: JobSearch) -> dict[str, Any]:
    """The fields of `search` that filter or page (those left at their default are left out)."""
    out: dict[str, Any] = {}
    if search.statuses:
        out["status"] = [state.value for state in search.statuses]
    for key in ("queue", "target", "text", "parent_id", "before_id"):
        if getattr(search, key) is not None:
            out[key] = getattr(search, key)
    if search.args is not NO_ARGS_FILTER:
        out["args"] = search.args
    for key in ("created_after", "created_before"):
        moment = getattr(search, key)
        if moment is not None:
            out[key] = iso(moment)
    if search.limit != JobSearch.limit:
        out["limit"] = search.limit
    return out


def _statuses(statuses: Any) -> tuple[JobState, ...]:
    if not isinstance(statuses, tuple | list):
        raise InvalidInput(f"statuses must be a list of states, got {type(statuses).__name__}")
    seen: dict[JobState, None] = {}
    for status in statuses:
        try:
            seen[JobState(status)] = None
        except ValueError:
            names = ", ".join(state.value for state in JobState)
            raise InvalidInput(f"status must be one of {names}, got {checks.shown(status, 80)}") from None
    return tuple(seen)


def _optional_text(name: str, value: Any, most: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise InvalidInput(f"{name} must be 1-{most} characters of text, got {checks.shown(value, 120)}")
    if "\x00" in value or not checks.is_text(value):
        raise InvalidInput(f"{name} must be valid Unicode text without NUL")
    return value


def _args_filter(value: Any) -> Any:
    """The JSON value to look for: checked as enqueue's args (nesting, 64-bit integers, Unicode), bounded, and
    without NUL (PostgreSQL's jsonb has none: no job with one is found by the args filter there)."""
    if value is NO_ARGS_FILTER:
        return value
    normalized = checks.json_value("args filter", value)
    encoded = dumps(normalized)
    if len(encoded) > MAX_ARGS_FILTER_CHARS:
        raise InvalidInput(f"args filter is at most {MAX_ARGS_FILTER_CHARS} characters as JSON")
    if _has_nul(normalized):
        raise InvalidInput("args filter: text cannot contain NUL")
    return normalized


def _has_nul(value: Any) -> bool:
    """Whether a NUL is in any text of `value` (keys too), found without recursion (check_tree bounded it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _parse_time(name: str, value: Any) -> Any:
    """An ISO-8601 string as a datetime (anything else goes on to the check, which names what it got)."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO-8601 time, got {checks.shown(value, 80)}") from None
    return moment


def _optional_time(name: str, value: Any) -> datetime | None:
    return None if value is None else checks.naive_utc(value, name)


def _optional_id(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in checks.JOB_IDS:
        raise InvalidInput(f"{name} must be a job id (1 to 2**63-1), got {checks.shown(value, 80)}")
    return int(value)


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}, got {checks.shown(value, 80)}")
    return int(value)
