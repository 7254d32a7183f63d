"""The allow-list, a security boundary: "pkg.mod.Class" + method, or "pkg.mod:function", and nothing else.

A target is checked against the allow-list before anything is imported: at enqueue, and again in the child
just before it runs, so a row edited in the database to `os` / `system` never runs.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from errands.errors import TargetNotAllowed

# \Z, not $: "$" also matches before a trailing newline, so "process\n" would pass as a name
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

AllowList = Mapping[str, Sequence[str]]


def is_function_target(target: str) -> bool:
    return ":" in target


def normalize_method(target: str, method: str) -> str:
    """Function targets have no method: "" (or "-" on a command line) stands for none."""
    if is_function_target(target) and method in ("", "-"):
        return ""
    return method


def check_allowed(target: str, method: str, allowed: AllowList) -> None:
    """Raise TargetNotAllowed unless `target`/`method` is on the allow-list. Imports nothing."""
    if is_function_target(target):
        module, _, func = target.partition(":")
        if not (_DOTTED.match(module) and _NAME.match(func)):
            raise TargetNotAllowed(target, method, "not a valid target (pkg.mod.Class or pkg.mod:function)")
        if func.startswith("_"):
            raise TargetNotAllowed(target, method, "not a public function")
        if method:
            raise TargetNotAllowed(target, method, "a function target takes no method")
    else:
        if not _DOTTED.match(target) or "." not in target:
            raise TargetNotAllowed(target, method, "not a valid target (pkg.mod.Class or pkg.mod:function)")
        if not _NAME.match(method) or method.startswith("_"):
            raise TargetNotAllowed(target, method, "not a valid public method name")
    if target not in allowed:
        raise TargetNotAllowed(target, method)
    if not is_function_target(target) and method not in allowed[target]:
        raise TargetNotAllowed(target, method, f"method not allowed for {target}")


def _import_from_cwd(module: str) -> Any:
    # Job code lives in the user's project: resolve it from the working directory, as rq and celery do.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(module)


def resolve(target: str, method: str, allowed: AllowList) -> tuple[Any, Callable[..., Any]]:
    """Check, import and return (instance or None, the callable). A class is instantiated with no arguments."""
    check_allowed(target, method, allowed)
    if is_function_target(target):
        module_name, _, func_name = target.partition(":")
        func = getattr(_import_from_cwd(module_name), func_name, None)
        if not callable(func):
            raise TargetNotAllowed(target, method, "not a callable")
        return None, func
    module_name, _, class_name = target.rpartition(".")
    klass = getattr(_import_from_cwd(module_name), class_name, None)
    if not isinstance(klass, type):
        raise TargetNotAllowed(target, method, "not a class")
    instance = klass()
    bound = getattr(instance, method, None)
    if not callable(bound):
        raise TargetNotAllowed(target, method, "no such method")
    return instance, bound
