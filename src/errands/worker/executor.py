"""Child processes that run jobs, and the pool that supervises them.

The pool hands one job at a time to an idle child, enforces timeouts and cancellation by killing the child
(its whole process group: SIGTERM, then SIGKILL after a grace; Windows: TerminateProcess), and replaces any
child that died or served max_jobs_per_child jobs. Replies arrive on a reader thread per child, so the pool
works the same on every OS. The pool never touches the database: its callers record what it reports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from errands.jobs import ErrorInfo, FollowUp, Job, dumps
from errands.worker.mux import Mux, new_mux
from errands.worker.protocol import error_from_json, follow_up_from_next

POSIX = os.name == "posix"


class Ending(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    REFUSED = "refused"  # the allow-list refused the target in the child: never retried
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    CRASHED = "crashed"  # the child died under the job (the job killed its own process)
    RELEASED = "released"  # stopped at shutdown: goes back to pending without spending its budget


@dataclass(frozen=True)
class AttemptResult:
    job: Job
    ending: Ending
    duration_s: float
    result: Any = None
    error: ErrorInfo | None = None
    follow_up: FollowUp | None = None


def child_popen_kwargs() -> dict[str, Any]:
    """Spawn arguments: children get their own process group, so a kill reaches whatever the job started."""
    if POSIX:
        return {"start_new_session": True}
    return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined,unused-ignore]


class Child:
    def __init__(self, allowed: Mapping[str, Sequence[str]], mux: Mux) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "errands.worker.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            **child_popen_kwargs(),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self.jobs_served = 0
        self.job: Job | None = None
        self.started_at = 0.0
        self.deadline: float | None = None
        self.ready = False  # the child said it is up: until then a job's clock doesn't run
        self._timeout_s: float | None = None
        self.kill_reason: Ending | None = None
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM already sent
        self.retired = False  # stdin closed: it finishes and exits, and takes no more jobs
        self._send({"allowed_jobs": {k: list(v) for k, v in allowed.items()}})
        mux.add(self, self.proc.stdout)

    @property
    def accepts_jobs(self) -> bool:
        return self.job is None and self.kill_reason is None and not self.retired

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _send(self, message: dict[str, Any]) -> None:
        self._stdin.write(dumps(message).encode() + b"\n")
        self._stdin.flush()

    def start(self, job: Job, timeout_s: float | None) -> None:
        self.job = job
        self._timeout_s = timeout_s
        self._start_clock()
        self.jobs_served += 1
        message = {"id": job.id, "target": job.target, "method": job.method, "args": list(job.args)}
        message["kwargs"] = job.kwargs
        self._send(message)

    def _start_clock(self) -> None:
        """A job's duration and timeout count from when its child can run it, not from the child's start-up."""
        self.started_at = time.monotonic()
        self.deadline = self.started_at + self._timeout_s if self._timeout_s and self.ready else None

    def mark_ready(self) -> None:
        self.ready = True
        if self.job is not None:
            self._start_clock()

    def signal_stop(self, reason: Ending, grace_s: float) -> None:
        """Ask the child (and its group) to stop now; SIGKILL follows after the grace."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self.kill_at = time.monotonic() + grace_s
        self._signal(signal.SIGTERM if POSIX else None)

    def force_kill(self) -> None:
        self._signal(signal.SIGKILL if POSIX else None)

    def _signal(self, signum: int | None) -> None:
        try:
            if POSIX and signum is not None:
                os.killpg(self.proc.pid, signum)
            else:
                self.proc.terminate()  # Windows: TerminateProcess
        except (ProcessLookupError, PermissionError):
            pass

    def close_pipes(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def retire(self) -> None:
        """No more jobs: closing stdin ends the child's loop."""
        self.retired = True
        try:
            self._stdin.close()
        except OSError:
            pass


@dataclass
class Pool:
    """A fixed number of children; `submit` to an idle one, `wait` for what ended."""

    size: int
    allowed: Mapping[str, Sequence[str]]
    max_jobs_per_child: int = 1000
    kill_grace_s: float = 3.0
    _mux: Mux = field(default_factory=new_mux)
    _children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def start(self) -> None:
        while len(self._children) < self.size:
            self._children.append(Child(self.allowed, self._mux))

    def idle(self) -> int:
        return sum(1 for c in self._children if c.accepts_jobs)

    def busy_jobs(self) -> list[Job]:
        return [c.job for c in self._children if c.job is not None]

    def submit(self, job: Job, timeout_s: float | None) -> None:
        for child in self._children:
            if child.accepts_jobs:
                child.start(job, timeout_s)
                return
        raise RuntimeError("no idle child")  # callers check idle() first

    def cancel(self, job_id: int, reason: Ending = Ending.CANCELLED) -> bool:
        for child in self._children:
            if child.job is not None and child.job.id == job_id:
                child.signal_stop(reason, self.kill_grace_s)
                return True
        return False

    def wake(self) -> None:
        """Make a wait() in progress return now (a notification, a signal); safe from any thread."""
        self._mux.wake()

    def wait(self, timeout_s: float) -> list[AttemptResult]:
        """Results that ended within `timeout_s`: returns at the first (with any others already in), when
        woken, or when the time runs out."""
        ended: list[AttemptResult] = []
        deadline = time.monotonic() + timeout_s
        while True:
            self._enforce_deadlines()
            now = time.monotonic()
            woken = False
            for key, line in self._mux.poll(min(deadline, self._next_deadline()) - now):
                if key is None:
                    woken = True
                    continue
                assert isinstance(key, Child)
                result = self._on_reply(key, None if line is None else json.loads(line))
                if result is not None:
                    ended.append(result)
            if ended or woken or time.monotonic() >= deadline:
                return ended

    def _next_deadline(self) -> float:
        """The earliest moment a timeout or a pending SIGKILL needs the loop's attention."""
        moments = [c.kill_at for c in self._children if c.kill_at is not None]
        moments += [c.deadline for c in self._children if c.deadline is not None and c.job is not None]
        return min(moments, default=float("inf"))

    def _on_reply(self, child: Child, reply: Any) -> AttemptResult | None:
        if reply is None:
            return self._on_exit(child)
        if reply.get("ready"):
            child.mark_ready()
            return None
        job = child.job
        if job is None or reply.get("id") != job.id or child.kill_reason is not None:
            return None  # a reply that raced with a kill: the kill's outcome stands
        child.job = None
        duration = time.monotonic() - child.started_at
        if child.jobs_served >= self.max_jobs_per_child:
            child.retire()
        if reply["ok"]:
            follow_up = follow_up_from_next(reply.get("next"), job.target)
            return AttemptResult(job, Ending.COMPLETED, duration, reply.get("result"), follow_up=follow_up)
        ending = Ending.REFUSED if reply.get("refused") else Ending.FAILED
        return AttemptResult(job, ending, duration, error=error_from_json(reply["error"]))

    def _on_exit(self, child: Child) -> AttemptResult | None:
        child.force_kill()  # the group may outlive its leader: take the job's own children too
        child.proc.wait()
        child.close_pipes()
        self._children.remove(child)
        job, reason = child.job, child.kill_reason
        if not self._stopping:
            self._children.append(Child(self.allowed, self._mux))
        if job is None:
            return None
        duration = time.monotonic() - child.started_at
        if reason is None:
            code = child.proc.returncode
            error = ErrorInfo("ChildCrashed", f"the process running the job died (exit code {code})")
            return AttemptResult(job, Ending.CRASHED, duration, error=error)
        if reason is Ending.TIMED_OUT:
            message = f"timed out after {duration:.3f}s"
            return AttemptResult(job, reason, duration, error=ErrorInfo("JobTimeout", message))
        return AttemptResult(job, reason, duration)

    def _enforce_deadlines(self) -> None:
        now = time.monotonic()
        for child in self._children:
            if child.kill_at is not None and now >= child.kill_at:
                child.force_kill()
                child.kill_at = None
            elif child.job is not None and child.kill_reason is None and child.deadline and now >= child.deadline:
                child.signal_stop(Ending.TIMED_OUT, self.kill_grace_s)

    def stop(self, release_running: bool = True) -> list[AttemptResult]:
        """Stop every child; jobs still running end as released (or cancelled, if that was asked first)."""
        self._stopping = True
        for child in self._children:
            if child.job is None:
                child.retire()
            else:
                child.signal_stop(Ending.RELEASED if release_running else Ending.CANCELLED, self.kill_grace_s)
        ended: list[AttemptResult] = []
        while self._children:
            ended.extend(self.wait(0.1))
        return ended

    def close(self) -> None:
        """After stop(): release the wake-up pipe and the selector."""
        self._mux.close()
