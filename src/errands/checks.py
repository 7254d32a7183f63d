"""The checks every door applies to what a caller passes, before anything is stored (pure): the columns'
lengths, 64-bit JSON integers, bounded nesting, valid Unicode, naive-UTC times. Each refusal is one InvalidInput
line. The Client checks enqueue's arguments with these, and errands.search a JobSearch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Set
from datetime import UTC, datetime, timedelta
from typing import Any

from errands.clock import utc_now
from errands.errors import InvalidInput, JobNotFound
from errands.jobs import FollowUp, dumps
from errands.settings import MAX_ATTEMPTS, MAX_DURATION_S
from errands.targets import normalize_method

# Limits every backend enforces alike (docs/cli.md lists them): the columns' lengths, 64-bit JSON integers
# (JSON readers of other languages lose bigger ones; Python can't even print 5,000 digits), bounded nesting.
MAX_TARGET = 255
MAX_METHOD = 100
MAX_QUEUE = 100
MAX_NESTING = 100
MAX_THEN_CHARS = 65_535  # `then` is a TEXT column: 64 KiB on MariaDB
INT64 = range(-(2**63), 2**63)
JOB_IDS = range(1, 2**63)
EARLIEST = datetime(1000, 1, 1)  # MariaDB's DATETIME starts at year 1000


def shown(value: Any, width: int = 120) -> str:
    """A caller's value as an error message shows it, cut to `width`. Never itself an error: repr() of an int
    of 5,000 digits raises ValueError, of a list nested 5,000 deep RecursionError."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if value is None or isinstance(value, str | bytes | int | float | bool | datetime):
        return repr(value)[:width]
    if isinstance(value, list | tuple | dict | Set):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def target_and_method(target: Any, method: Any, where: str = "") -> tuple[str, str]:
    if not isinstance(target, str) or not isinstance(method, str):
        raise InvalidInput(
            f"{where}target and method must be str, got {type(target).__name__} and {type(method).__name__}"
        )
    if len(target) > MAX_TARGET or len(method) > MAX_METHOD:
        raise InvalidInput(f"{where}target is at most {MAX_TARGET} characters and method at most {MAX_METHOD}")
    return target, normalize_method(target, method)


def then_size(then: tuple[FollowUp, ...]) -> tuple[FollowUp, ...]:
    if then and len(dumps([step.to_json() for step in then])) > MAX_THEN_CHARS:
        raise InvalidInput(f"then is at most {MAX_THEN_CHARS} characters as JSON")
    return then


def job_id(job_id: Any) -> int:
    """An id no job can have is not found (not an overflow in the driver)."""
    if isinstance(job_id, bool) or not isinstance(job_id, int):
        raise InvalidInput(f"a job id is an int, got {type(job_id).__name__}")
    if job_id not in JOB_IDS:
        raise JobNotFound(job_id)
    return int(job_id)


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, got {shown(value)}")
    return value


def is_text(value: str) -> bool:
    """Text every backend and every JSON reader takes: a lone surrogate (undecodable bytes of a command line)
    is no Unicode text."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_plain(value: Any) -> bool:
    """A value that JSON keeps exactly as it is: no round trip needed to normalize or check it."""
    kind = type(value)
    if kind is str:
        return is_text(value)
    if kind is int:
        return value in INT64
    return kind is bool or value is None or (kind is float and math.isfinite(value))


def check_tree(name: str, value: Any) -> None:
    """Depth, integer range and text, checked without recursion: a value nested 5,000 deep is refused
    with one line, not a RecursionError."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple | dict):
            if depth > MAX_NESTING:
                raise InvalidInput(f"{name} nest at most {MAX_NESTING} levels")
            if isinstance(item, dict):
                stack.extend((key, depth + 1) for key in item)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, int) and not isinstance(item, bool) and item not in INT64:
            raise InvalidInput(f"{name}: integers are 64-bit (-2**63 to 2**63-1), got one of {item.bit_length()} bits")
        elif isinstance(item, str) and not is_text(item):
            raise InvalidInput(f"{name}: text must be valid Unicode (no lone surrogates)")


def json_value(name: str, value: Any) -> Any:
    """`value` as JSON gives it back (tuples become lists, ...), or InvalidInput. A list or dict of plain
    values (the usual arguments) is that already; anything else is checked and makes the round trip."""
    if (type(value) is list and all(map(is_plain, value))) or (
        type(value) is dict and all(map(is_plain, value.values()))
    ):
        return value
    check_tree(name, value)
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be JSON values (no pickle): {exc}") from None


def arg_list(name: str, value: Any) -> list[Any]:
    # a str is a Sequence too: "abc" must not become ["a", "b", "c"]; a set has no order to call with
    unordered = isinstance(value, str | bytes | bytearray | Mapping | Set)
    if unordered or not isinstance(value, Iterable):
        raise InvalidInput(f"{name} must be a list of JSON values, got {type(value).__name__}")
    return list(value)


def kwarg_dict(name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise InvalidInput(f"{name} must be a mapping with str keys, got {type(value).__name__}")
    return dict(value)


def queue_name(queue: Any) -> str:
    """`queue` if it is a name a queue can have (the CLI checks --queue with it too), else InvalidInput."""
    if not isinstance(queue, str) or not queue or len(queue) > MAX_QUEUE:
        raise InvalidInput(f"queue must be 1-{MAX_QUEUE} printable characters, got {shown(queue)}")
    if not queue.isprintable() or queue.strip() != queue:
        raise InvalidInput(f"queue must be 1-{MAX_QUEUE} printable characters, got {shown(queue)}")
    return queue


INT32 = range(-(2**31), 2**31)  # the columns are 32-bit INTEGER on every backend


def int32(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in INT32:
        raise InvalidInput(f"{name} must be a 32-bit integer, got {shown(value)}")
    return int(value)


def attempts(value: int | None) -> int | None:
    if value is None:
        return None
    if not 1 <= int32("max_attempts", value) <= MAX_ATTEMPTS:
        raise InvalidInput(f"max_attempts must be 1 to {MAX_ATTEMPTS}, got {value}")
    return int(value)


def non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value >= 0 and math.isfinite(value)):
        raise InvalidInput(f"{name} must be a number of seconds >= 0, got {shown(value)}")
    return float(value)


def delay(value: float) -> float:
    seconds = non_negative("delay", value)
    if not seconds:
        return seconds
    try:  # the store adds it to its clock: a delay past year 9999 would raise OverflowError there
        utc_now() + timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidInput(f"delay is too far in the future, got {shown(value)}") from None
    return seconds


def naive_utc(moment: Any, name: str = "at") -> datetime:
    """The store keeps naive UTC: an aware time is converted, not just stripped of its zone."""
    if not isinstance(moment, datetime):
        raise InvalidInput(f"{name} must be a datetime, got {type(moment).__name__}")
    try:
        naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo is not None else moment
    except OverflowError:  # year 1 at +05:00 is in year 0 in UTC
        raise InvalidInput(f"{name} is out of range: {moment.isoformat()}") from None
    if naive < EARLIEST:
        raise InvalidInput(f"{name} must be in year 1000 or later, got {moment.isoformat()}")
    return naive


def positive(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value <= MAX_DURATION_S):
        raise InvalidInput(f"{name} must be a number of seconds > 0 and <= {MAX_DURATION_S:.0f}, got {shown(value)}")
    return float(value)
