"""Outcomes made storable before they are written: what a job raised or returned is hostile input.

PostgreSQL refuses NUL in text, MariaDB refuses an error type over its column's 255 characters (and a TEXT
message over 64 KiB), and a lone surrogate can't be encoded at all. One outcome the database refuses used to
fail its whole batch, over and over. Here every text goes in bounded and encodable, on every backend alike;
a row the database still refuses is recorded failed on its own (see UNSTORABLE and SqlStore.jobs_finish).
"""

from __future__ import annotations

import dataclasses

from errands.jobs import AttemptOutcome, ErrorInfo, JobState, dumps, safe_text
from errands.store.base import Outcome
from errands.store.schema import jobs

UNSTORABLE = "UnstorableOutcome"  # the error type of an outcome recorded in place of one the database refused

TYPE_LIMIT = int(jobs.c.error_type.type.length or 255)  # type: ignore[attr-defined]  # VARCHAR(255)
# MariaDB's TEXT holds 65,535 bytes: 16,000 characters of up to 4 bytes each fit
MESSAGE_LIMIT = 16_000
TRACEBACK_LIMIT = 100_000  # LONGTEXT: the bound is for the logs and the packet, not the column
# MariaDB refuses a statement over max_allowed_packet (16 MiB by default) and drops the connection: a result
# that large would fail its batch as a lost connection, again at every retry
RESULT_LIMIT = 8 * 1024 * 1024
_CUT = "... [cut: {} characters in all]"


def storable_text(text: str, limit: int, *, keep_end: bool = False) -> str:
    """`text` without NUL (escaped as \\x00) or unencodable characters, at most `limit` characters long: the
    start kept (a message, a type) or, with keep_end, the end (a traceback ends where it was raised)."""
    text = safe_text(text)
    if len(text) <= limit:
        return text
    marker = _CUT.format(len(text))
    kept = limit - len(marker)
    return marker + text[-kept:] if keep_end else text[:kept] + marker


def storable_error(error: ErrorInfo | None) -> ErrorInfo | None:
    if error is None:
        return None
    stored = ErrorInfo(
        storable_text(error.type, TYPE_LIMIT),
        storable_text(error.message, MESSAGE_LIMIT),
        None if error.traceback is None else storable_text(error.traceback, TRACEBACK_LIMIT, keep_end=True),
        error.mro,
    )
    return error if stored == error else stored


def storable_outcome(outcome: Outcome) -> Outcome:
    """The outcome as the database can hold it; one whose result is too large becomes UNSTORABLE."""
    size = _result_size(outcome)
    if size > RESULT_LIMIT:
        return unstorable(outcome, f"its result is {size} characters of JSON, over {RESULT_LIMIT}")
    error = storable_error(outcome.error)
    return outcome if error is outcome.error else dataclasses.replace(outcome, error=error)


def unstorable(outcome: Outcome, why: str) -> Outcome:
    """What is recorded instead of an outcome the database refused: the attempt failed, and the job with it
    (it must not stay running; retrying would likely end the same way)."""
    message = storable_text(f"the outcome of attempt {outcome.attempt} could not be stored: {why}", MESSAGE_LIMIT)
    return Outcome(
        outcome.job_id,
        outcome.token,
        outcome.attempt,
        AttemptOutcome.FAILED,
        JobState.FAILED,
        error=ErrorInfo(UNSTORABLE, message),
    )


def _result_size(outcome: Outcome) -> int:
    result = outcome.result
    if result is None or isinstance(result, bool | int | float) or outcome.next_state is not JobState.COMPLETED:
        return 0
    if isinstance(result, str) and len(result) * 6 <= RESULT_LIMIT:  # JSON's longest escape: 6 characters
        return 0
    return len(dumps(result))  # JSON escapes NUL and lone surrogates: only the size can be a problem
