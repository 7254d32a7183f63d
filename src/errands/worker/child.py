"""A child process that runs jobs: `python -m errands.worker.child`. It imports job code once and is reused.

The protocol travels on the original stdin and stdout; the job's own prints go to stderr, so a job that prints
can't corrupt a reply, and its stdin is /dev/null, so a job that reads input gets EOF instead of blocking on (or
swallowing) the protocol. Jobs arrive in batches and run one after another; a reader thread keeps taking
messages while a job runs, so the parent can take back jobs that haven't started (`revoke`). What it reports
about a job is shaped by worker/report.py (nothing after the body may cost a rerun) and, for a sensitive job,
redacted by worker/redact.py before it leaves.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from errands.errors import TargetNotAllowed
from errands.jobs import dumps, safe_text
from errands.targets import AllowList, resolve
from errands.worker import report
from errands.worker.protocol import error_to_json
from errands.worker.redact import Redactor

PARENT_CHECK_S = 0.2
_NEVER = float("inf")


def _next_job(instance: Any, result: Any) -> list[Any] | None:
    hook = getattr(instance, "next_job", None)
    if instance is None or not callable(hook):
        return None
    return report.follow_up(hook(result))


class Targets:
    """resolve() once per target and method: the allow-list check and the import don't change in a child's
    life. A class is still instantiated for every job; a target that failed to resolve is tried again."""

    def __init__(self, allowed: AllowList) -> None:
        self.allowed = allowed
        self._functions: dict[str, Callable[..., Any]] = {}
        self._classes: dict[tuple[str, str], type] = {}

    def resolve(self, target: str, method: str) -> tuple[Any, Callable[..., Any]]:
        func = self._functions.get(target)
        if func is not None and not method:
            return None, func
        klass = self._classes.get((target, method))
        if klass is not None:
            instance = klass()
            return instance, getattr(instance, method)
        instance, func = resolve(target, method, self.allowed)
        if instance is None:
            self._functions[target] = func
        else:
            self._classes[(target, method)] = type(instance)
        return instance, func


def run_one(message: dict[str, Any], targets: Targets) -> dict[str, Any]:
    try:
        instance, func = targets.resolve(message["target"], message["method"])
    except TargetNotAllowed as exc:
        return _failed(message, exc, refused=True)
    except BaseException as exc:  # the job's module failed to import: an attempt failure like any other
        return _failed(message, exc)
    try:
        result = func(*message["args"], **message["kwargs"])
    except BaseException as exc:
        return _failed(message, exc)
    reply = {"id": message["id"], "ok": True, "result": result, "next": None}
    try:
        reply["next"] = _next_job(instance, result)
    except BaseException as exc:  # the body ran and its completion stands: only the follow-up is refused
        why = _redacted(message, report.reason(exc))
        reply["next_refused"] = report.head(safe_text(why), report.REASON_CHARS)
    return reply


def _failed(message: dict[str, Any], exc: BaseException, refused: bool = False) -> dict[str, Any]:
    error = report.error_info(exc)
    if message.get("sensitive"):  # before any cut: a secret cut in two would get past the redaction
        error = Redactor(message["args"], message["kwargs"]).error(error)
    return {"id": message["id"], "ok": False, "refused": refused, "error": error_to_json(report.stored(error))}


def _redacted(message: dict[str, Any], text: str) -> str:
    return Redactor(message["args"], message["kwargs"]).text(text) if message.get("sensitive") else text


class Inbox:
    """Jobs sent and not started yet; the reader thread fills it, the main thread takes from it."""

    def __init__(self) -> None:
        self._jobs: deque[tuple[dict[str, Any], float]] = deque()  # each with the moment to start it by
        self._ready = threading.Condition()
        self._closed = False

    def put(self, jobs: list[dict[str, Any]], until: float | None) -> None:
        start_by = _NEVER if until is None else until
        with self._ready:
            self._jobs.extend((job, start_by) for job in jobs)
            self._ready.notify()

    def revoke(self, ids: list[int]) -> list[int]:
        """Take back the jobs among `ids` that haven't started; returns their ids."""
        wanted = set(ids)
        return self._take_back(lambda job, _: job["id"] in wanted)

    def expired(self, now: float) -> list[int]:
        """Take back the jobs whose start-by moment has passed; returns their ids."""
        return self._take_back(lambda _, start_by: now > start_by)

    def _take_back(self, which: Callable[[dict[str, Any], float], bool]) -> list[int]:
        with self._ready:
            taken = [job["id"] for job, start_by in self._jobs if which(job, start_by)]
            if taken:
                self._jobs = deque(item for item in self._jobs if not which(*item))
        return taken

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()

    def take(self) -> tuple[dict[str, Any], float] | None:
        """The next job and the moment to start it by; None once the parent closed our stdin and nothing is
        left."""
        with self._ready:
            while not self._jobs and not self._closed:
                self._ready.wait()
            return self._jobs.popleft() if self._jobs else None


class Replies:
    """Lines to the parent, from either thread; each written at once, so the parent sees a job's end as it
    happens (its clock for the next job starts then)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        self._write((dumps(message) + "\n").encode())

    def send_ended(self, reply: dict[str, Any], seconds: float) -> None:
        """A job's reply; the common one (done, no result, no follow-up) as a short line: `ok ID SECONDS`."""
        if reply["ok"] and reply["result"] is None and reply["next"] is None and "next_refused" not in reply:
            self._write(b"ok %d %.6f\n" % (reply["id"], seconds))
        else:
            reply["s"] = round(seconds, 6)
            self._write((report.encode_reply(reply) + "\n").encode())

    def _write(self, data: bytes) -> None:
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]


def _read_commands(commands: IO[str], inbox: Inbox, replies: Replies) -> None:
    for line in commands:
        message = json.loads(line)
        if "jobs" in message:
            inbox.put(message["jobs"], message.get("until"))
        elif "revoke" in message:
            replies.send({"revoked": inbox.revoke(message["revoke"])})
    inbox.close()


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
    replies = Replies(os.dup(sys.stdout.fileno()))
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    commands = os.fdopen(os.dup(sys.stdin.fileno()), "r", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())
    os.close(devnull)
    targets = Targets(json.loads(commands.readline())["allowed_jobs"])
    inbox = Inbox()
    reader = threading.Thread(target=_read_commands, args=(commands, inbox, replies), name="errands-commands")
    reader.daemon = True
    reader.start()
    replies.send({"ready": True})
    while (taken := inbox.take()) is not None:
        message, start_by = taken
        if (now := time.monotonic()) > start_by:  # the parent's lease may have lapsed: it decides again
            replies.send({"revoked": [message["id"], *inbox.expired(now)]})
            continue
        started = time.perf_counter()
        reply = run_one(message, targets)
        replies.send_ended(reply, time.perf_counter() - started)


if __name__ == "__main__":
    main()
