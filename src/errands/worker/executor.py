"""Child processes that run jobs, and the pool that supervises them.

The pool hands jobs to children, one at a time for slow jobs and in small batches for quick ones (a child
runs its batch in order, and the parent learns each job's end as it happens: the job after it is then the
one running). It enforces timeouts and cancellation by killing the child (its whole process group: SIGTERM,
then SIGKILL after a grace; Windows: TerminateProcess), takes back jobs a child hasn't started when the one
before them runs long (revoke), and replaces any child that died or served max_jobs_per_child jobs. Jobs a
child never started come back through `take_returned()`. The pool never touches the database: its callers
record what it reports. A line a child shouldn't have sent (not JSON, a reply for a job it doesn't run) and a
follow-up the child refused go to the error log (`Pool.log`) and change nothing else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any

from errands.jobs import ErrorInfo, FollowUp, Job, dumps
from errands.logs import JobLog
from errands.worker.mux import Mux, new_mux
from errands.worker.oscalls import child_popen_kwargs, stop_child
from errands.worker.protocol import error_from_json, follow_up_from_next


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


def job_message(job: Job) -> dict[str, Any]:
    """A job as the protocol sends it to a child."""
    message = {"id": job.id, "target": job.target, "method": job.method, "args": list(job.args), "kwargs": job.kwargs}
    if job.sensitive:  # the child cuts its arguments out of an error before sending it
        message["sensitive"] = True
    return message


def result_of(job: Job, reply: dict[str, Any], running_s: float) -> AttemptResult:
    """A child's reply on `job` as an AttemptResult (its duration: the child's own measure, else `running_s`)."""
    duration = float(reply.get("s", running_s))
    if reply["ok"]:
        follow_up = follow_up_from_next(reply.get("next"), job.target)
        return AttemptResult(job, Ending.COMPLETED, duration, reply.get("result"), follow_up=follow_up)
    ending = Ending.REFUSED if reply.get("refused") else Ending.FAILED
    return AttemptResult(job, ending, duration, error=error_from_json(reply["error"]))


def _decode(line: bytes) -> dict[str, Any]:
    """A child's reply: JSON, or the short line of a plain completion (`ok ID SECONDS`); ValueError if neither."""
    if line.startswith(b"ok "):
        _, job_id, seconds = line.split()
        return {"id": int(job_id), "ok": True, "s": float(seconds)}
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ValueError(f"a JSON {type(reply).__name__}, not an object")
    return reply


def _shown(line: bytes, job: Job | None) -> str:
    """A dropped line as the error log shows it: cut short, and not at all while a sensitive job runs."""
    if job is not None and job.sensitive:
        return f"({len(line)} bytes)"
    return repr(line[:120]) + ("..." if len(line) > 120 else "")


# what a malformed line or reply raises on its way to a result (before any state changes)
MALFORMED = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


STALL_S = 0.1  # a child's current job ran this long: the jobs queued behind it are taken back for others
LINGER_S = 0.001  # with every child busy for a while, replies gather this long before the parent looks


class Child:
    def __init__(self, allowed: Mapping[str, Sequence[str]], mux: Mux, max_jobs: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "errands.worker.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            **child_popen_kwargs(),
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._stdin: IO[bytes] = self.proc.stdin
        self.jobs_served = 0
        self.queue: deque[tuple[Job, float | None]] = deque()  # sent, not yet ended: the first is running
        self.started_at = 0.0  # when the first of the queue started (as far as the parent can tell)
        self.deadline: float | None = None
        self.ready = False  # the child said it is up: until then a job's clock doesn't run
        self.revoking = False  # a revoke is on its way: no more jobs until its answer
        self.kill_reason: Ending | None = None  # for the job running when the kill was sent
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM already sent
        self.broken = False  # its stdin is closed under us: it died, and its exit is on its way
        self.retired = False  # stdin closed: it finishes and exits, and takes no more jobs
        self.max_jobs = max_jobs  # retire after serving this many
        self._send({"allowed_jobs": {k: list(v) for k, v in allowed.items()}})
        mux.add(self, self.proc.stdout)

    @property
    def job(self) -> Job | None:
        """The job running (or about to) in this child."""
        return self.queue[0][0] if self.queue else None

    @property
    def accepts_jobs(self) -> bool:
        return (
            self.kill_reason is None
            and not self.retired
            and not self.broken
            and not self.revoking
            and self.jobs_served < self.max_jobs
        )

    def stalled(self, now: float) -> bool:
        """Its current job has run long: jobs queued behind it would wait (start-up doesn't count)."""
        return self.ready and bool(self.queue) and now - self.started_at > STALL_S

    def stall_at(self) -> float | None:
        """When the jobs queued behind the current one are to be taken back, if they are still waiting then."""
        if len(self.queue) > 1 and self.ready and not self.revoking and self.kill_reason is None:
            return self.started_at + STALL_S
        return None

    def unstarted_ids(self) -> list[int]:
        return [job.id for job, _ in list(self.queue)[1:]]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def room(self, depth: int) -> int:
        """How many more jobs it takes now: none while its current job has run long (they'd wait behind it),
        and none until half its queue is done (a batch per message, not a job per message)."""
        if not self.accepts_jobs or self.stalled(time.monotonic()):
            return 0
        if len(self.queue) > depth // 2:
            return 0
        return min(depth - len(self.queue), self.max_jobs - self.jobs_served)

    def _send(self, message: dict[str, Any]) -> bool:
        """False if the child is gone (its exit reaches the pool through its closed stdout)."""
        try:
            self._stdin.write(dumps(message).encode() + b"\n")
            self._stdin.flush()
        except OSError:  # BrokenPipeError, or stdin already closed
            self.broken = True
            return False
        return True

    def start(self, batch: Sequence[tuple[Job, float | None]], until: float | None = None) -> bool:
        """Send the jobs, to be started by `until` (time.monotonic()) or given back; False (nothing queued) if
        the child is gone."""
        messages = [job_message(job) for job, _ in batch]
        if not self._send({"jobs": messages, "until": until}):
            return False
        was_idle = not self.queue
        self.queue.extend(batch)
        if was_idle:
            self._start_clock()
        self.jobs_served += len(batch)
        return True

    def revoke(self, job_ids: Sequence[int]) -> None:
        """Ask for the not yet started among these back; the answer comes as a `revoked` reply."""
        if self._send({"revoke": list(job_ids)}):
            self.revoking = True

    def ended(self) -> None:
        """The running job ended; the next in the queue (if any) runs from now."""
        self.queue.popleft()
        if self.queue:
            self._start_clock()

    def _start_clock(self) -> None:
        """A job's duration and timeout count from when its child can run it, not from the child's start-up."""
        self.started_at = time.monotonic()
        timeout_s = self.queue[0][1] if self.queue else None
        self.deadline = self.started_at + timeout_s if timeout_s and self.ready else None

    def mark_ready(self) -> None:
        self.ready = True
        if self.queue:
            self._start_clock()

    def signal_stop(self, reason: Ending, grace_s: float) -> None:
        """Ask the child (and its group) to stop now; SIGKILL follows after the grace."""
        if self.kill_reason is None:
            self.kill_reason = reason
        self.kill_at = time.monotonic() + grace_s
        stop_child(self.proc, force=False)

    def force_kill(self) -> None:
        stop_child(self.proc, force=True)

    def close_pipes(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def retire(self) -> None:
        """No more jobs: closing stdin ends the child's loop once its queue is done."""
        self.retired = True
        try:
            self._stdin.close()
        except OSError:
            pass


@dataclass
class Pool:
    """A fixed number of children; `submit` a job to an idle one or `assign` batches, `wait` for what ended."""

    size: int
    allowed: Mapping[str, Sequence[str]]
    max_jobs_per_child: int = 100_000
    kill_grace_s: float = 3.0
    log: JobLog | None = None  # for what a child got wrong (a reply that makes no sense, a refused follow-up)
    _mux: Mux = field(default_factory=new_mux)
    _children: list[Child] = field(default_factory=list)
    _stopping: bool = False
    _cancelling: set[int] = field(default_factory=set)  # queued in a child; stopped if it starts, else revoked
    _returned: list[Job] = field(default_factory=list)  # handed to a child that never started them
    _results: list[AttemptResult] = field(default_factory=list)  # ended outside a reply (a revoked cancel)

    def start(self) -> None:
        while len(self._children) < self.size:
            self._spawn()

    def _spawn(self) -> None:
        self._children.append(Child(self.allowed, self._mux, self.max_jobs_per_child))

    def idle(self) -> int:
        return sum(1 for c in self._children if c.accepts_jobs and not c.queue)

    def room(self, depth: int) -> int:
        """How many jobs the children take now, with at most `depth` queued in each."""
        return sum(max(0, c.room(depth)) for c in self._children)

    def busy(self) -> int:
        """How many jobs are handed to children and not ended (busy_jobs() without the list)."""
        return sum(len(c.queue) for c in self._children)

    def busy_jobs(self) -> list[Job]:
        """Every job handed to a child and not ended: running, or queued behind the running one."""
        return [job for c in self._children for job, _ in c.queue]

    def submit(self, job: Job, timeout_s: float | None) -> None:
        """To an idle child; if it turns out dead, the job ends released (it never ran) and wait() says so."""
        for child in self._children:
            if child.accepts_jobs and not child.queue:
                if not child.start([(job, timeout_s)]):
                    self._results.append(AttemptResult(job, Ending.RELEASED, 0.0))
                return
        raise RuntimeError("no idle child")  # callers check idle() first

    def assign(self, batch: Sequence[tuple[Job, float | None]], depth: int, until: float | None = None) -> list[Job]:
        """Spread the jobs over the children with room, the emptiest first; returns those that found no room
        (a child's current job may have turned long since room() was asked). A child gives back unstarted
        what it couldn't start by `until` (time.monotonic()): through take_returned(), as a revoke's answer."""
        todo = list(batch)
        for child in sorted(self._children, key=lambda c: len(c.queue)):
            take = max(0, min(child.room(depth), len(todo)))
            if take and child.start(todo[:take], until):
                del todo[:take]
        return [job for job, _ in todo]

    def recall(self) -> None:
        """Ask every child for the jobs it hasn't started (at shutdown); they come back by take_returned()."""
        for child in self._children:
            if len(child.queue) > 1 and not child.revoking:
                child.revoke(child.unstarted_ids())

    def take_returned(self) -> list[Job]:
        """Jobs handed to a child that never started them (it was stopped, or gave them back), in order."""
        returned, self._returned = self._returned, []
        return returned

    def cancel(self, job_id: int, reason: Ending = Ending.CANCELLED) -> bool:
        for child in self._children:
            ids = [job.id for job, _ in child.queue]
            if job_id not in ids:
                continue
            if ids[0] == job_id:
                child.signal_stop(reason, self.kill_grace_s)
            else:  # not started yet: take it back, or stop it if it starts before the child answers
                self._cancelling.add(job_id)
                child.revoke([job_id])
            return True
        return False

    def wake(self) -> None:
        """Make a wait() in progress return now (a notification, a signal); safe from any thread."""
        self._mux.wake()

    def wait(self, timeout_s: float) -> list[AttemptResult]:
        """Results that ended within `timeout_s`: returns at the first (with any others already in), when
        woken, when jobs came back, or when the time runs out."""
        ended: list[AttemptResult] = []
        deadline = time.monotonic() + timeout_s
        while True:
            woken = self._read(0.0, ended)  # what already arrived first: a job that ended isn't timed out
            self._enforce_deadlines()
            if not (ended or woken or self._returned):
                woken = self._read(min(deadline, self._next_deadline()) - time.monotonic(), ended)
            if ended and not woken and self._all_busy():
                time.sleep(LINGER_S)  # every child has more queued: let replies gather, one step for many
                woken = self._read(0.0, ended)
            if ended or woken or self._returned or time.monotonic() >= deadline:
                return ended

    def _all_busy(self) -> bool:
        """Every child has jobs queued behind the one it runs."""
        return all(len(c.queue) > 2 for c in self._children)

    def _read(self, timeout_s: float, ended: list[AttemptResult]) -> bool:
        woken = False
        for key, line in self._mux.poll(0.0 if self._results else timeout_s):
            if key is None:
                woken = True
                continue
            assert isinstance(key, Child)
            result = self._on_exit(key) if line is None else self._on_line(key, line)
            if result is not None:
                ended.append(result)
        ended.extend(self._results)  # ended without a reply of their own (a cancel answered by a revoke)
        self._results.clear()
        return woken

    def _next_deadline(self) -> float:
        """The earliest moment a timeout, a pending SIGKILL or a stalled queue needs the loop's attention."""
        moments = [c.kill_at for c in self._children if c.kill_at is not None]
        moments += [c.deadline for c in self._children if c.deadline is not None and c.queue]
        moments += [at for c in self._children if (at := c.stall_at()) is not None]
        return min(moments, default=float("inf"))

    def _on_line(self, child: Child, line: bytes) -> AttemptResult | None:
        """A line from a child. One that makes no sense (a bug, or a job that wrote to the protocol's pipe) is
        logged and dropped, and the pool goes on: the running job's own reply still ends it."""
        try:
            return self._on_reply(child, _decode(line))
        except MALFORMED as exc:
            self._problem(
                child, f"dropped a reply it can't read ({type(exc).__name__}: {exc}): {_shown(line, child.job)}"
            )
            return None

    def _on_reply(self, child: Child, reply: dict[str, Any]) -> AttemptResult | None:
        if "revoked" in reply:
            self._on_revoked(child, reply["revoked"])
            return None
        if reply.get("ready"):
            child.mark_ready()
            return None
        job = child.job
        if job is None or reply.get("id") != job.id:
            running = "no job" if job is None else f"job {job.id}"
            self._problem(child, f"dropped a reply for job {reply.get('id')!r} while it runs {running}")
            return None
        result = result_of(job, reply, time.monotonic() - child.started_at)  # checked before any change
        if child.kill_reason is not None:
            # The job ended before the kill arrived: its own outcome stands, and the kill now hits whatever
            # runs next, which goes back to pending (released) as it may have started.
            child.kill_reason = Ending.RELEASED
        child.ended()
        self._cancelling.discard(job.id)
        self._after_end(child)
        if reply.get("next_refused"):
            self._refused_follow_up(job, str(reply["next_refused"]))
        return result

    def _refused_follow_up(self, job: Job, reason: str) -> None:
        """next_job() raised or returned what enqueue refuses: the job completed (its body ran, once); only the
        follow-up is dropped, as a refused follow-up target is."""
        self._error(job, f"Refused job: follow-up of job {job.id}: {reason}")

    def _problem(self, child: Child, message: str) -> None:
        self._error(child.job, f"Child {child.pid}: {message}")

    def _error(self, job: Job | None, message: str) -> None:
        if self.log is None:  # a pool nobody gave a log: stderr, where a worker's own errors go
            sys.stderr.write(message + "\n")
        else:
            self.log.error(job, message, job.attempts if job else None)

    def _after_end(self, child: Child) -> None:
        """The next job of the child's queue is running now: stop it if it was cancelled meanwhile; retire a
        child that served its share once its queue is done."""
        nxt = child.job
        if nxt is not None and nxt.id in self._cancelling and child.kill_reason is None:
            child.signal_stop(Ending.CANCELLED, self.kill_grace_s)
        if nxt is None and child.jobs_served >= child.max_jobs:
            child.retire()

    def _on_revoked(self, child: Child, job_ids: list[int]) -> None:
        taken = set(job_ids)
        child.revoking = False
        back = [job for job, _ in child.queue if job.id in taken]
        child.queue = deque(item for item in child.queue if item[0].id not in taken)
        child.jobs_served -= len(back)
        self._give_back(back)

    def _give_back(self, unstarted: list[Job]) -> None:
        """Jobs a child never started: cancelled ones end so; the others come back through take_returned()."""
        for job in unstarted:
            if job.id in self._cancelling:
                self._cancelling.discard(job.id)
                self._results.append(AttemptResult(job, Ending.CANCELLED, 0.0))
            else:
                self._returned.append(job)

    def _on_exit(self, child: Child) -> AttemptResult | None:
        child.force_kill()  # the group may outlive its leader: take the job's own children too
        child.proc.wait()
        child.close_pipes()
        self._children.remove(child)
        job, reason = child.job, child.kill_reason
        self._give_back([queued for queued, _ in list(child.queue)[1:]])  # the child ran its queue in order
        if not self._stopping:
            self._spawn()
        if job is None:
            return None
        self._cancelling.discard(job.id)
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
            elif child.queue and child.kill_reason is None and child.deadline and now >= child.deadline:
                child.signal_stop(Ending.TIMED_OUT, self.kill_grace_s)
            elif (stall_at := child.stall_at()) is not None and now >= stall_at:
                child.revoke(child.unstarted_ids())

    def stop(self, release_running: bool = True) -> list[AttemptResult]:
        """Stop every child; jobs still running end as released (or cancelled, if that was asked first);
        jobs queued behind them come back through take_returned()."""
        self._stopping = True
        for child in self._children:
            if not child.queue:
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
