"""What a child reports about a job once its body has run, shaped so the parent, the store and the logs take it.

A job's body runs once, so nothing that happens after it returns may turn into a lost attempt (a child that
died writing its reply, an error the database refused to store), which would run it again:
- a result that JSON can't encode (a dict with tuple keys, an int too long to print, a __str__ that raises, a
  cycle) or that nests deeper than MAX_DEPTH travels as a stand-in, {"unencodable": "<type>: <reason>"};
- an exception whose str() raises is reported with a stand-in message;
- an error's text is made safe (jobs.safe_text: no NUL, no lone surrogate); the store cuts it to its columns;
- next_job()'s answer is checked as enqueue checks a job (a str is not a list of args): a bad one is refused,
  and the job still completes.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from errands.jobs import ErrorInfo, safe_text
from errands.retry import exception_names

# Deeper results are stored as a stand-in: every reader (the parent, the store, `jobs show`) decodes a stored
# value within Python's recursion limit, from wherever its own stack is.
MAX_DEPTH = 200
REASON_CHARS = 200  # a stand-in's or a refusal's reason is cut to this
# jobs.dumps, but strict: NaN and infinities aren't JSON, and `--json` must print what any parser reads
_REPLY_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, allow_nan=False)


def _text(exc: BaseException) -> str:
    """str(exc), or a stand-in if its __str__ raises: the error is reported either way."""
    try:
        return str(exc)
    except BaseException:
        return f"<{type(exc).__name__}: str() failed>"


def _traceback(exc: BaseException) -> str | None:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except BaseException:  # a hostile exception (its __notes__, its cause...): the rest of the error still goes
        return None


def error_info(exc: BaseException) -> ErrorInfo:
    """The exception as raised: type, message, traceback, the names of its classes (see stored())."""
    names = exception_names(exc)
    return ErrorInfo(names[0], _text(exc) or names[0], _traceback(exc), names)


def reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {_text(exc)}"


def head(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... [{len(text) - limit} more characters]"


def stored(error: ErrorInfo) -> ErrorInfo:
    """The error with safe text (the store bounds its lengths to its columns). Redact before this."""
    traceback = None if error.traceback is None else safe_text(error.traceback)
    return ErrorInfo(safe_text(error.type), safe_text(error.message), traceback, error.mro)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and dicts nest more than `limit` levels in `value` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            inner: Iterable[Any] = item.values()
        elif isinstance(item, list | tuple):
            inner = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in inner)
    return False


def follow_up(nxt: Any) -> list[Any] | None:
    """next_job()'s answer as the protocol's "next", or TypeError saying what enqueue would refuse in it."""
    if nxt is None:
        return None
    if not isinstance(nxt, tuple | list) or len(nxt) not in (2, 3):
        raise TypeError("next_job() must return (method, args), (target, method, args) or None")
    *names, args = nxt
    if not all(isinstance(name, str) for name in names):
        raise TypeError("next_job() must name the method (and target) with a str")
    return [*names, _follow_up_args(args)]


def _follow_up_args(args: Any) -> list[Any]:
    """A list of JSON values (a str is not split into characters), as JSON gives them back."""
    if isinstance(args, str | bytes | bytearray | Mapping) or not isinstance(args, Iterable):
        raise TypeError(f"next_job() args must be a list of JSON values, got {type(args).__name__}")
    try:
        checked: list[Any] = json.loads(json.dumps(list(args), allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise TypeError(f"next_job() args must be JSON values (no pickle): {reason(exc)}") from None
    if _deeper_than(checked, MAX_DEPTH):
        raise TypeError(f"next_job() args nest deeper than {MAX_DEPTH} levels")
    return checked


def encode_reply(reply: dict[str, Any]) -> str:
    """A job's reply as one JSON line the parent can read back. A value JSON can't hold travels as its str()
    (as jobs.dumps does); a result that can't be encoded at all (or holds NaN), or nests deeper than MAX_DEPTH,
    as a stand-in."""
    encode = _REPLY_ENCODER.encode
    try:
        line = encode(reply)
    except BaseException as exc:
        return encode({**reply, "result": unencodable(reply.get("result"), reason(exc))})
    if line.count("[") + line.count("{") > MAX_DEPTH and _deeper_than(reply.get("result"), MAX_DEPTH):
        return encode({**reply, "result": unencodable(reply.get("result"), f"nested deeper than {MAX_DEPTH} levels")})
    return line


def unencodable(result: Any, why: str) -> dict[str, str]:
    """The stand-in stored for a result that can't be: valid JSON, the same for the same failure."""
    return {"unencodable": head(safe_text(f"{type(result).__name__}: {why}"), REASON_CHARS)}
