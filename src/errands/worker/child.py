"""A child process that runs jobs: `python -m errands.worker.child`. It imports job code once and is reused.

The protocol travels on the original stdin and stdout; the job's own prints go to stderr, so a job that prints
can't corrupt a reply, and its stdin is /dev/null, so a job that reads input gets EOF instead of blocking on (or
swallowing) the protocol.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from errands.errors import TargetNotAllowed
from errands.jobs import ErrorInfo, dumps
from errands.retry import exception_names
from errands.targets import AllowList, resolve
from errands.worker.protocol import error_to_json


def _error(exc: BaseException) -> ErrorInfo:
    names = exception_names(exc)
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return ErrorInfo(names[0], str(exc) or names[0], tb, names)


def _next_job(instance: Any, result: Any) -> list[Any] | None:
    hook = getattr(instance, "next_job", None)
    if instance is None or not callable(hook):
        return None
    nxt = hook(result)
    if nxt is None:
        return None
    if not isinstance(nxt, tuple | list) or len(nxt) not in (2, 3):
        raise TypeError("next_job() must return (method, args), (target, method, args) or None")
    return [*nxt[:-1], list(nxt[-1])]


def run_one(message: dict[str, Any], allowed: AllowList) -> dict[str, Any]:
    job_id = message["id"]
    try:
        instance, func = resolve(message["target"], message["method"], allowed)
    except TargetNotAllowed as exc:
        return {"id": job_id, "ok": False, "refused": True, "error": error_to_json(_error(exc))}
    except BaseException as exc:  # the job's module failed to import: an attempt failure like any other
        return {"id": job_id, "ok": False, "refused": False, "error": error_to_json(_error(exc))}
    try:
        result = func(*message["args"], **message["kwargs"])
        nxt = _next_job(instance, result)
    except BaseException as exc:
        return {"id": job_id, "ok": False, "refused": False, "error": error_to_json(_error(exc))}
    return {"id": job_id, "ok": True, "result": result, "next": nxt}


PARENT_CHECK_S = 0.2


def _die_with_parent() -> None:
    """A child runs in a session of its own (so a timeout can kill the job's whole group), which also keeps
    a worker's SIGKILL from reaching it. Without its supervisor nobody records the job, and the rescuer will
    run it again: so when the parent is gone, the child takes its group down at once."""
    if os.name != "posix":
        return  # Windows: the parent's TerminateProcess of a job object is the supervisor's own business
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os.killpg(os.getpgrp(), signal.SIGKILL)

    threading.Thread(target=watch, name="errands-parent-watch", daemon=True).start()


def main() -> None:
    _die_with_parent()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    commands = os.fdopen(os.dup(sys.stdin.fileno()), "r", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())
    os.close(devnull)
    hello = json.loads(commands.readline())
    allowed: AllowList = hello["allowed_jobs"]
    protocol.write('{"ready": true}\n')
    for line in commands:
        reply = run_one(json.loads(line), allowed)
        protocol.write(dumps(reply) + "\n")  # a result JSON can't hold travels as its str()


if __name__ == "__main__":
    main()
