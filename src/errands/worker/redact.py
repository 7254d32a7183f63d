"""A sensitive job's arguments cut out of what its child reports: an error's message and traceback.

An exception's message often quotes the job's arguments (`ValueError(f"card {number} declined")`), and its
traceback repeats the message. For a job enqueued with sensitive=True the child replaces each argument's text
wherever it appears, in the spellings a message or a traceback uses (str, repr, JSON), before the error leaves
the child: the database, the logs and --json never see it. A value shorter than MIN_CHARS is left alone:
replacing every "1" or "ab" would wreck the traceback (its line numbers) and hide nothing worth hiding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from errands.jobs import REDACTED, ErrorInfo

MIN_CHARS = 3


def _leaves(values: Sequence[Any]) -> Iterator[Any]:
    """The scalars inside the arguments (JSON values: lists, dicts, str, numbers), without recursion."""
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        else:
            yield value


def _spellings(value: Any) -> set[str]:
    if value is None or isinstance(value, bool):
        return set()
    if isinstance(value, str):
        return {value, repr(value)[1:-1], json.dumps(value)[1:-1]}
    try:
        return {str(value), repr(value)}
    except ValueError:  # an int too long to print: no message can quote it either
        return set()


class Redactor:
    def __init__(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        found: set[str] = set()
        for leaf in _leaves([*args, *kwargs.values()]):
            found |= _spellings(leaf)
        # the longest first, so a secret that contains another is cut out whole
        self._secrets = sorted((s for s in found if len(s) >= MIN_CHARS), key=len, reverse=True)

    def text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def error(self, error: ErrorInfo) -> ErrorInfo:
        traceback = None if error.traceback is None else self.text(error.traceback)
        return ErrorInfo(error.type, self.text(error.message), traceback, error.mro)
