"""The pool's batches, with real child processes: a child takes several jobs at once, runs them in order and
replies as each ends; the pool takes back what a child hasn't started (a stall, a death, a cancel, a recall).

Like test_executor.py (whose job module, helpers and allow-list these tests reuse), each test chdirs to a
tmp_path holding the job modules, and waits on conditions under a deadline, never with fixed sleeps. A job that
must not run leaves a file behind if it does; a job that must stay running waits for a file the test creates.
"""

from __future__ import annotations

import functools
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import test_executor
from test_executor import ALLOWED as UNIT_ALLOWED
from test_executor import DEADLINE_S, make_job, pids_in, run, until, warm

import errands.worker.executor as executor
from errands.jobs import Job
from errands.worker.executor import STALL_S, AttemptResult, Ending, Pool

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and process groups: POSIX")

BATCH_JOBS_MODULE = """
import os
import time
from pathlib import Path


def _write(path, text):
    tmp = Path(path + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # atomic: the test never reads half a file


class Batch:
    def square(self, n):
        return {"n": n, "square": n * n, "pid": os.getpid()}

    def mark(self, path, n):
        _write(path, str(os.getpid()))
        return {"n": n, "pid": os.getpid()}

    def log(self, path, n):
        with open(path, "a") as f:  # O_APPEND: one short line per job, never interleaved
            f.write(f"{n} {os.getpid()}\\n")
        return {"n": n, "pid": os.getpid()}

    def gate(self, started, go):
        _write(started, str(os.getpid()))
        deadline = time.monotonic() + 15
        while not Path(go).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the test never opened the gate")
            time.sleep(0.005)
        return "released"
"""

# a child's start-up held until a file appears (sitecustomize runs before `-m errands.worker.child`)
SLOW_START_MODULE = """
import os
import time

gate = os.environ.get("ERRANDS_TEST_START_GATE")
if gate:
    deadline = time.monotonic() + 15
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.005)
"""

ALLOWED: dict[str, list[str]] = {**UNIT_ALLOWED, "batch_jobs.Batch": ["square", "mark", "log", "gate"]}


def batch_job(method: str, *args: Any) -> Job:
    return make_job("batch_jobs.Batch", method, *args)


# test_executor's fixtures, shared: the job module in a fresh working directory, and fresh pools (with each mux)
workdir = test_executor.workdir
mux = test_executor.mux
make_pool = test_executor.make_pool


@pytest.fixture
def bdir(workdir: Path) -> Path:
    (workdir / "batch_jobs.py").write_text(BATCH_JOBS_MODULE)  # beside unit_jobs.py, in the children's cwd
    return workdir


@pytest.fixture
def new_pool(bdir: Path, make_pool: Callable[..., Pool]) -> Callable[..., Pool]:
    """test_executor's fresh pools, with batch_jobs.py beside unit_jobs.py and on the allow-list."""
    return functools.partial(make_pool, allowed=ALLOWED)


def drive(pool: Pool, ids: set[int], returned: int = 0) -> tuple[list[AttemptResult], list[Job]]:
    """Supervise until every job of `ids` ended and `returned` jobs came back: the results in the order they
    arrived, and the jobs given back in the order the pool gave them."""
    ended: list[AttemptResult] = []
    back: list[Job] = []
    deadline = time.monotonic() + DEADLINE_S
    while {r.job.id for r in ended} != ids or len(back) < returned:
        if time.monotonic() > deadline:
            pytest.fail(f"ended {sorted(r.job.id for r in ended)} of {sorted(ids)}; {len(back)}/{returned} back")
        back += pool.take_returned()
        for result in pool.wait(0.2):
            assert result.job.id in ids, f"unexpected result {result}"
            assert result.job.id not in {r.job.id for r in ended}, f"a second result for {result.job.id}"
            ended.append(result)
    back += pool.take_returned()
    assert [job.id for job in back][returned:] == [], "more jobs came back than expected"
    return ended, back


def settle(pool: Pool, done: Callable[[], bool] | None = None) -> tuple[dict[int, AttemptResult], list[Job]]:
    """Supervise until `done()` (by default: until no child holds a job); what ended (by job id) and what came
    back meanwhile."""
    done = done or (lambda: not pool.busy_jobs())
    results: dict[int, AttemptResult] = {}
    back: list[Job] = []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        back += pool.take_returned()
        if done():
            return results, back
        if time.monotonic() > deadline:
            pytest.fail(f"timed out; jobs still held by the children: {[job.id for job in pool.busy_jobs()]}")
        for result in pool.wait(0.2):
            assert result.job.id not in results, f"a second result for {result.job.id}"
            results[result.job.id] = result


def exited(pid: int) -> bool:
    """Our child `pid` is dead, every thread of it (so its pipes are closed), and not reaped yet (WNOWAIT: the
    pool still reaps it). A zombie leader (what gone() accepts) may still have threads holding its pipes."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def collect_one(pool: Pool, job: Job) -> list[AttemptResult]:
    ended, back = drive(pool, {job.id})
    assert back == []
    return ended


def child_pid(pool: Pool) -> int:
    """The pid of the (only) child, from a job it runs: the child is then up and ready, too."""
    result = run(pool, make_job("unit_jobs.Jobs", "pid"))
    assert result.ending is Ending.COMPLETED
    pid = result.result["pid"]
    assert isinstance(pid, int) and pid != os.getpid()
    return pid


# batches that run through -------------------------------------------------------------------------------


def test_a_batch_of_quick_jobs_completes_in_order_in_one_child(new_pool: Callable[..., Pool]) -> None:
    pool = new_pool()
    pid = child_pid(pool)
    jobs = [batch_job("square", n) for n in range(20)]
    assert pool.room(20) == 20
    pool.assign([(job, 5.0) for job in jobs], 20)
    assert pool.busy_jobs() == jobs
    assert pool.room(20) == 0  # its queue is full
    ended, back = drive(pool, {job.id for job in jobs})
    assert back == []
    assert [r.job.id for r in ended] == [job.id for job in jobs]  # one reply per job, as each ends, in order
    for n, result in enumerate(ended):
        assert result.ending is Ending.COMPLETED, result
        assert result.result == {"n": n, "square": n * n, "pid": pid}
        assert result.error is None
        assert isinstance(result.duration_s, float)
        assert 0.0 <= result.duration_s < 1.0, result.duration_s  # the child's own measure of the call
    assert pool.busy_jobs() == []
    assert pool.room(20) == 20


def test_jobs_behind_a_stalled_job_come_back_unstarted(new_pool: Callable[..., Pool], bdir: Path) -> None:
    pool = new_pool()
    warm(pool)
    started, go = bdir / "started", bdir / "go"
    blocker = batch_job("gate", str(started), str(go))
    quick = [batch_job("mark", str(bdir / f"quick-{n}"), n) for n in range(3)]
    assigned_at = time.monotonic()
    pool.assign([(blocker, None)] + [(job, None) for job in quick], 4)

    ended, back = drive(pool, set(), returned=3)
    assert time.monotonic() - assigned_at >= STALL_S  # taken back once the first ran past STALL_S, not before
    assert ended == []
    assert back == quick  # in order, to be first in line again
    until(started.exists, pool, "the blocking job to start")
    assert pool.busy_jobs() == [blocker]
    assert pool.room(4) == 0  # no more jobs behind a job that runs long
    assert [path.name for path in bdir.glob("quick-*")] == []  # none of them ran

    go.touch()
    (done,) = collect_one(pool, blocker)
    assert (done.ending, done.result) == (Ending.COMPLETED, "released")
    assert pool.take_returned() == []
    assert [path.name for path in bdir.glob("quick-*")] == []  # still not: they were taken back for good

    # the jobs given back are whole: they run when handed out again
    assert pool.room(4) == 4
    pool.assign([(job, None) for job in back], 4)
    rerun, _ = drive(pool, {job.id for job in quick})
    assert [(r.job.id, r.ending, r.result["n"]) for r in rerun] == [
        (j.id, Ending.COMPLETED, n) for n, j in enumerate(quick)
    ]
    assert sorted(path.name for path in bdir.glob("quick-*")) == ["quick-0", "quick-1", "quick-2"]


# cancel, timeout, crash, recall -------------------------------------------------------------------------


def test_cancelling_a_queued_job_revokes_it_without_running_it(new_pool: Callable[..., Pool], bdir: Path) -> None:
    pool = new_pool()
    warm(pool)
    started, go = bdir / "started", bdir / "go"
    running = batch_job("gate", str(started), str(go))
    victim = batch_job("mark", str(bdir / "victim"), 1)
    behind = batch_job("mark", str(bdir / "behind"), 2)
    pool.assign([(running, None), (victim, None), (behind, None)], 3)
    assert pool.cancel(victim.id) is True  # before the stall could take it back: it is queued in the child

    ended, back = drive(pool, {victim.id}, returned=1)
    (cancelled,) = ended
    assert cancelled.job == victim
    assert cancelled.ending is Ending.CANCELLED
    assert cancelled.error is None
    assert cancelled.duration_s == 0.0
    assert back == [behind]  # not cancelled: taken back when the running job stalled, to run elsewhere
    until(started.exists, pool, "the running job to start")
    assert pool.busy_jobs() == [running]
    assert pool.cancel(victim.id) is False  # nothing left to cancel

    go.touch()
    (done,) = collect_one(pool, running)
    assert (done.ending, done.result) == (Ending.COMPLETED, "released")  # the job ahead is unaffected
    assert not (bdir / "victim").exists()
    assert not (bdir / "behind").exists()
    assert pool.take_returned() == []


def test_cancelling_a_queued_job_that_started_meanwhile_stops_it(new_pool: Callable[..., Pool], bdir: Path) -> None:
    """The pool learns of a job's start only from the reply of the one before: a cancel it sends as a revoke can
    find the job started, and then the job is stopped when the pool sees it become the running one."""
    pool = new_pool()
    pid = child_pid(pool)
    first = batch_job("mark", str(bdir / "first"), 1)
    second = make_job("unit_jobs.Jobs", "wait_forever", str(bdir / "second.pid"))
    pool.assign([(first, None), (second, None)], 2)
    until((bdir / "second.pid").exists, what="the second job to start")  # no pool.wait: the first's reply waits
    assert pool.busy_jobs() == [first, second]  # as far as the pool knows, the second hasn't started
    assert pool.cancel(second.id) is True

    ended, back = drive(pool, {first.id, second.id})
    assert back == []
    assert [(r.job.id, r.ending) for r in ended] == [(first.id, Ending.COMPLETED), (second.id, Ending.CANCELLED)]
    assert ended[0].result == {"n": 1, "pid": pid}
    assert ended[1].error is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped, and reaped
    assert child_pid(pool) != pid  # a fresh child takes the next job


def test_cancelling_the_running_job_gives_back_the_ones_behind_it(
    new_pool: Callable[..., Pool], bdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "STALL_S", 60.0)  # so only the child's death can give the queue back
    pool = new_pool()
    warm(pool)
    running = make_job("unit_jobs.Jobs", "wait_forever", str(bdir / "running.pid"))
    behind = [batch_job("mark", str(bdir / f"behind-{n}"), n) for n in range(2)]
    pool.assign([(running, None)] + [(job, None) for job in behind], 3)
    (pid,) = pids_in(bdir / "running.pid", pool)
    assert pool.take_returned() == []
    assert pool.cancel(running.id) is True
    ended, back = drive(pool, {running.id}, returned=2)
    assert [(r.job.id, r.ending) for r in ended] == [(running.id, Ending.CANCELLED)]
    assert back == behind
    assert [path.name for path in bdir.glob("behind-*")] == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.mark.parametrize("by", ["stall", "death"])
def test_a_timeout_in_a_batch_ends_the_running_job_and_gives_back_the_rest(
    new_pool: Callable[..., Pool], bdir: Path, monkeypatch: pytest.MonkeyPatch, by: str
) -> None:
    """Jobs behind the one that times out come back unstarted: taken back when it stalled, or when its child was
    killed (with the stall out of the way)."""
    if by == "death":
        monkeypatch.setattr(executor, "STALL_S", 60.0)
    pool = new_pool(kill_grace_s=0.3)
    pid = child_pid(pool)
    before = batch_job("mark", str(bdir / "before"), 0)
    slow = make_job("unit_jobs.Jobs", "wait_forever", str(bdir / "slow.pid"))
    behind = [batch_job("mark", str(bdir / f"behind-{n}"), n) for n in range(1, 4)]
    pool.assign([(before, 5.0), (slow, 0.5)] + [(job, 5.0) for job in behind], 5)

    ended, back = drive(pool, {before.id, slow.id}, returned=3)
    assert [(r.job.id, r.ending) for r in ended] == [(before.id, Ending.COMPLETED), (slow.id, Ending.TIMED_OUT)]
    timed_out = ended[1]
    assert timed_out.error is not None and timed_out.error.type == "JobTimeout"
    assert timed_out.error.message.startswith("timed out after ")
    assert 0.5 <= timed_out.duration_s < 10  # its own clock, from when it became the running job
    assert back == behind
    assert (bdir / "before").exists()
    assert [path.name for path in bdir.glob("behind-*")] == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    # the pool replaced the child: a later job runs, in a new process
    later = batch_job("mark", str(bdir / "later"), 9)
    result = run(pool, later)
    assert result.ending is Ending.COMPLETED
    assert result.result["pid"] != pid
    assert (bdir / "later").exists()


def test_a_crash_in_the_middle_of_a_batch(new_pool: Callable[..., Pool], bdir: Path) -> None:
    pool = new_pool()
    pid = child_pid(pool)
    earlier = [batch_job("mark", str(bdir / f"earlier-{n}"), n) for n in range(2)]
    crash = make_job("unit_jobs.Jobs", "kill_self")
    later = [batch_job("mark", str(bdir / f"later-{n}"), n) for n in range(2)]
    pool.assign([(job, None) for job in [*earlier, crash, *later]], 5)

    ended, back = drive(pool, {job.id for job in [*earlier, crash]}, returned=2)
    assert [(r.job.id, r.ending) for r in ended] == [
        (earlier[0].id, Ending.COMPLETED),
        (earlier[1].id, Ending.COMPLETED),
        (crash.id, Ending.CRASHED),
    ]
    assert [r.result for r in ended[:2]] == [{"n": 0, "pid": pid}, {"n": 1, "pid": pid}]
    crashed = ended[2]
    assert crashed.error is not None and crashed.error.type == "ChildCrashed"
    assert "exit code -9" in crashed.error.message, crashed.error.message
    assert back == later
    assert sorted(path.name for path in bdir.glob("earlier-*")) == ["earlier-0", "earlier-1"]
    assert [path.name for path in bdir.glob("later-*")] == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert child_pid(pool) != pid  # replaced


def test_recall_gives_back_the_jobs_not_started_and_leaves_the_running_one(
    new_pool: Callable[..., Pool], bdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(executor, "STALL_S", 60.0)  # so it is recall(), not the stall, that takes them back
    pool = new_pool(2)
    until(lambda: pool.idle() == 2, pool, "two idle children")
    warm(pool)
    started, go = bdir / "started", bdir / "go"
    running = batch_job("gate", str(started), str(go))
    queued = [batch_job("mark", str(bdir / f"queued-{n}"), n) for n in range(3)]
    alone_started, alone_go = bdir / "alone-started", bdir / "alone-go"
    alone = batch_job("gate", str(alone_started), str(alone_go))
    pool.assign([(running, None), *[(job, None) for job in queued]], 4)  # the emptiest child first: all in one
    pool.assign([(alone, None)], 4)  # the other child: a running job with nothing behind it
    until(lambda: started.exists() and alone_started.exists(), pool, "both gates to start")
    assert pool.take_returned() == []

    pool.recall()
    ended, back = drive(pool, set(), returned=3)
    assert ended == []
    assert back == queued
    assert sorted(job.id for job in pool.busy_jobs()) == sorted([running.id, alone.id])  # unaffected

    go.touch()
    alone_go.touch()
    done, back = drive(pool, {running.id, alone.id})
    assert back == []
    assert {r.job.id: (r.ending, r.result) for r in done} == {
        running.id: (Ending.COMPLETED, "released"),
        alone.id: (Ending.COMPLETED, "released"),
    }
    assert [path.name for path in bdir.glob("queued-*")] == []


def test_max_jobs_per_child_with_batches_loses_nothing_and_runs_nothing_twice(
    new_pool: Callable[..., Pool], bdir: Path
) -> None:
    pool = new_pool(max_jobs_per_child=5)
    log = bdir / "ran.log"
    jobs = [batch_job("log", str(log), n) for n in range(12)]
    assert pool.room(10) == 5  # no more than its share, however deep the queue may be
    pending = list(jobs)
    ended: list[AttemptResult] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(ended) < len(jobs):  # what the worker loop does: hand out what fits, first what came back
        assert time.monotonic() < deadline, f"{len(ended)} of {len(jobs)} jobs ended"
        pending[:0] = pool.take_returned()
        room = min(pool.room(10), len(pending))
        if room > 0:
            batch, pending = pending[:room], pending[room:]
            pending[:0] = pool.assign([(job, None) for job in batch], 10) or []  # any that found no room after all
        ended.extend(pool.wait(0.2))
    assert pending == [] and pool.take_returned() == []

    assert sorted(r.job.id for r in ended) == sorted(job.id for job in jobs)  # each ended once
    assert all(r.ending is Ending.COMPLETED for r in ended)
    runs = [line.split() for line in log.read_text().splitlines()]
    assert [int(n) for n, _ in runs] == list(range(12))  # each ran once, in order
    pids = [int(pid) for _, pid in runs]
    assert {r.result["n"]: r.result["pid"] for r in ended} == dict(enumerate(pids))
    served = Counter(pids)
    assert len(served) == 3 and sorted(served.values()) == [2, 5, 5]
    assert pids[:5] == [pids[0]] * 5 and pids[5:10] == [pids[5]] * 5 and pids[10:] == [pids[10]] * 2
    for retired in (pids[0], pids[5]):
        with pytest.raises(ProcessLookupError):
            os.kill(retired, 0)  # retired once its share was done, and reaped
    assert os.getpid() not in pids


# the wire -----------------------------------------------------------------------------------------------


class Replies:
    """The child's stdout, a JSON line at a time, each awaited under the deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self._fd = proc.stdout.fileno()
        self._buffer = b""

    def next(self) -> Any:
        deadline = time.monotonic() + DEADLINE_S
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no reply from the child")
            readable, _, _ = select.select([self._fd], [], [], left)
            if readable:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    pytest.fail(f"the child closed its stdout; left: {self._buffer!r}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def rest(self) -> bytes:
        """Everything until EOF (the child has exited)."""
        chunks = [self._buffer]
        while chunk := os.read(self._fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)


class RawChild:
    """A child on its own, spoken to in the wire protocol (protocol.py), without a pool."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "errands.worker.child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.replies = Replies(self.proc)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def raw_child(bdir: Path) -> Any:
    child = RawChild()
    child.send({"allowed_jobs": ALLOWED})
    assert child.replies.next() == {"ready": True}
    yield child
    child.close()


def wire(job_id: int, method: str, *args: Any) -> dict[str, Any]:
    return {"id": job_id, "target": "batch_jobs.Batch", "method": method, "args": list(args), "kwargs": {}}


def test_the_child_answers_a_revoke_with_the_jobs_not_started(raw_child: RawChild, bdir: Path) -> None:
    send, replies, proc = raw_child.send, raw_child.replies, raw_child.proc
    assert proc.stdin is not None
    started, go = bdir / "started", bdir / "go"
    send({"jobs": [wire(1, "gate", str(started), str(go)), *[wire(n, "mark", str(bdir / f"m{n}"), n) for n in (2, 3)]]})
    until(started.exists, what="job 1 to start")
    send({"revoke": [1, 2, 3, 99]})  # 1 has started; 99 was never sent
    assert replies.next() == {"revoked": [2, 3]}  # answered while job 1 still runs
    send({"jobs": [wire(4, "mark", str(bdir / "m4"), 4)]})  # a revoke doesn't stop the child taking more
    send({"revoke": [2]})
    assert replies.next() == {"revoked": []}  # already taken back

    go.touch()
    first = replies.next()
    assert isinstance(first.pop("s"), float)
    assert first == {"id": 1, "ok": True, "result": "released", "next": None}
    fourth = replies.next()
    assert isinstance(fourth.pop("s"), float)
    assert fourth == {"id": 4, "ok": True, "result": {"n": 4, "pid": proc.pid}, "next": None}
    proc.stdin.close()
    assert proc.wait(timeout=DEADLINE_S) == 0
    assert replies.rest() == b""  # no reply for the jobs taken back
    assert not (bdir / "m2").exists() and not (bdir / "m3").exists()
    assert (bdir / "m4").exists()


def test_the_child_gives_back_unasked_the_jobs_it_reaches_after_their_start_by_moment(
    raw_child: RawChild, bdir: Path
) -> None:
    send, replies = raw_child.send, raw_child.replies
    started, go = bdir / "started", bdir / "go"
    start_by = time.monotonic() + 0.2  # the machine's monotonic clock: the child's too
    late = [wire(n, "mark", str(bdir / f"m{n}"), n) for n in (2, 3)]
    send({"jobs": [wire(1, "gate", str(started), str(go)), *late], "until": start_by})
    send({"jobs": [wire(4, "mark", str(bdir / "m4"), 4)], "until": None})  # no start-by moment: runs
    until(started.exists, what="job 1 to start")
    until(lambda: time.monotonic() > start_by, what="the start-by moment to pass")

    go.touch()  # job 1 started in time and ends; 2 and 3 are reached too late
    first = replies.next()
    assert (first["id"], first["ok"]) == (1, True)
    assert replies.next() == {"revoked": [2, 3]}
    fourth = replies.next()
    assert (fourth["id"], fourth["ok"], fourth["result"]["n"]) == (4, True, 4)
    assert not (bdir / "m2").exists() and not (bdir / "m3").exists()


# bugs, documented: each of these tests fails on the pool as it is ----------------------------------------


def test_a_cancel_that_lands_on_the_next_job_does_not_give_it_back_as_unstarted(
    new_pool: Callable[..., Pool], bdir: Path
) -> None:
    pool = new_pool()
    warm(pool)
    first = batch_job("mark", str(bdir / "first"), 1)
    second = batch_job("gate", str(bdir / "second-started"), str(bdir / "never"))
    pool.assign([(first, None), (second, None)], 2)
    until((bdir / "second-started").exists, what="the second job to start")  # no pool.wait: first's reply waits
    assert (bdir / "first").exists()  # the first job is done: its reply is in the pipe
    assert pool.busy_jobs() == [first, second]
    assert pool.cancel(first.id) is True  # the worker's cancel check, for a job it thinks is running
    results, back = settle(pool)
    assert first.id in results
    assert [job.id for job in back] == [], (
        "the second job started (and may have done its work): it must not be given back as unstarted"
    )
    assert second.id in results


def test_two_queued_jobs_cancelled_while_a_revoke_is_on_its_way_both_end(
    new_pool: Callable[..., Pool], bdir: Path
) -> None:
    pool = new_pool()
    warm(pool)
    started, go = bdir / "started", bdir / "go"
    running = batch_job("gate", str(started), str(go))
    first, second = (batch_job("mark", str(bdir / f"cancelled-{n}"), n) for n in range(2))
    pool.assign([(running, None), (first, None), (second, None)], 3)
    pool.recall()  # a revoke of both on its way (the stall's revoke does the same)
    assert pool.cancel(first.id) is True
    assert pool.cancel(second.id) is True
    results, back = settle(pool, lambda: pool.busy_jobs() == [running])  # the child answered the revoke
    go.touch()
    more, more_back = settle(pool)
    results.update(more)
    back += more_back
    assert results[running.id].ending is Ending.COMPLETED
    assert [path.name for path in bdir.glob("cancelled-*")] == []
    for job in (first, second):  # each cancelled job ends as cancelled (or, at worst, comes back): never lost
        assert job.id in results or job in back, f"job {job.id} was lost"
    assert {results[job.id].ending for job in (first, second)} == {Ending.CANCELLED}


@pytest.mark.parametrize("call", ["cancel", "recall", "assign"])
def test_a_child_dead_but_not_yet_reaped_does_not_break_the_pool(
    new_pool: Callable[..., Pool], bdir: Path, call: str
) -> None:
    pool = new_pool()
    pid = child_pid(pool)
    queued = batch_job("mark", str(bdir / "queued"), 1)
    crash = make_job("unit_jobs.Jobs", "kill_self")
    if call == "assign":
        os.kill(pid, signal.SIGKILL)  # an idle child killed from outside (the OOM killer, an operator)
    else:
        pool.assign([(crash, None), (queued, None)], 2)
    until(lambda: exited(pid), what="the child to die")  # no pool.wait: the pool hasn't seen it die
    if call == "cancel":
        assert pool.cancel(queued.id) is True
    elif call == "recall":
        pool.recall()
    else:
        assert pool.room(2) == 2  # as far as the pool knows, an idle child
        assert pool.assign([(queued, None)], 2) == [queued]  # it found the child gone: the caller keeps it
    results, back = settle(pool)
    assert not (bdir / "queued").exists()
    if call != "assign":
        assert results.pop(crash.id).ending is Ending.CRASHED
    if queued.id in results:  # the queued job never ran: it comes back, or ends as cancelled if that was asked
        assert call == "cancel" and results[queued.id].ending is Ending.CANCELLED and back == []
    else:
        assert back == ([] if call == "assign" else [queued])
    assert child_pid(pool) != pid


def test_a_batch_handed_to_a_child_still_starting_up_is_not_taken_back(
    new_pool: Callable[..., Pool], bdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = bdir / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SLOW_START_MODULE)
    start_gate = bdir / "start-gate"
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("ERRANDS_TEST_START_GATE", str(start_gate))  # the child can't start before the test says
    pool = new_pool()
    jobs = [batch_job("square", n) for n in range(5)]
    assert pool.room(5) == 5
    assigned_at = time.monotonic()
    pool.assign([(job, None) for job in jobs], 5)
    # supervise the starting child for a few STALL_S: the time in which the stall would take its queue back
    until(lambda: time.monotonic() - assigned_at > 3 * STALL_S, pool, "the start-up to take a while")
    start_gate.touch()
    results, back = settle(pool)
    assert [job.id for job in back] == [], "jobs taken back from a child that hadn't started any"
    assert [results[job.id].result["n"] for job in jobs] == list(range(5))
