"""The exit codes every command shares, and the wrapper that turns an ErrandsError into one (main.py's
docstring lists them). A module of its own so the command groups in other files (cli/accounts.py) use it too."""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import IntEnum
from typing import Any, TypeVar

import typer

from errands.cli import render
from errands.errors import (
    ConfigError,
    ErrandsError,
    InvalidInput,
    InvalidTransition,
    JobNotFound,
    StoreError,
    TokenNotFound,
    UserNotFound,
)


class Exit(IntEnum):
    OK = 0
    JOB_FAILED = 1
    BAD_INPUT = 2
    NOT_FOUND = 3
    WRONG_STATE = 4
    CANCELLED = 5
    CONFIG_OR_DATABASE = 6
    INTERRUPTED = 130


EXIT_FOR: list[tuple[type[ErrandsError], Exit]] = [
    (InvalidInput, Exit.BAD_INPUT),
    (JobNotFound, Exit.NOT_FOUND),
    (UserNotFound, Exit.NOT_FOUND),
    (TokenNotFound, Exit.NOT_FOUND),
    (InvalidTransition, Exit.WRONG_STATE),
    (ConfigError, Exit.CONFIG_OR_DATABASE),
    (StoreError, Exit.CONFIG_OR_DATABASE),
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(code: Exit, message: str) -> typer.Exit:
    render.err().print(f"errands: {message}", markup=False)
    return typer.Exit(int(code))


def command(func: F) -> F:
    """Every command: an ErrandsError becomes one line on stderr and its exit code, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ErrandsError as exc:
            code = next((code for kind, code in EXIT_FOR if isinstance(exc, kind)), Exit.CONFIG_OR_DATABASE)
            raise fail(code, str(exc)) from None
        except KeyboardInterrupt:
            raise fail(Exit.INTERRUPTED, "interrupted") from None

    return wrapper  # type: ignore[return-value]
