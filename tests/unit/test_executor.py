"""The child-process executor, with real child processes running a job module written to tmp_path.

The child resolves targets from its working directory, so each test chdirs to a tmp_path holding `unit_jobs.py`.
Results are awaited with pool.wait() under a deadline, never with fixed sleeps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest

import factories
from errands.jobs import FollowUp, Job
from errands.logs import JobLog
from errands.spawn import CREATE_NEW_PROCESS_GROUP, DETACHED_PROCESS, spawn_kwargs
from errands.worker.executor import AttemptResult, Ending, Pool, child_popen_kwargs
from errands.worker.mux import Event, Mux, SelectorMux, ThreadMux
from errands.worker.oscalls import stop_child

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and process groups: POSIX")

DEADLINE_S = 20.0

JOBS_MODULE = """
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path


class AppError(Exception):
    pass


def _write_pid(path, *pids):
    tmp = Path(path + ".tmp")
    tmp.write_text(" ".join(str(p) for p in pids))
    tmp.replace(path)  # atomic: the test never reads half a file


class Jobs:
    def add(self, a, b):
        return a + b

    def pid(self, tag=None):
        return {"pid": os.getpid(), "tag": tag}

    def fail(self, message):
        raise AppError(message)

    def bad_value(self):
        int("not a number")

    def touch(self, path):
        Path(path).write_text("ran")

    def _touch_private(self, path):
        Path(path).write_text("ran")

    def noisy(self):
        print('{"id": 999999, "ok": true, "result": "forged"}')
        print("not json at all {")
        sys.stdout.flush()
        os.system("echo shell output on fd 1")
        sys.stderr.write("and some stderr\\n")
        return "quiet"

    def stubborn(self, pid_file):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
        helper = subprocess.Popen([sys.executable, "-c", code])
        _write_pid(pid_file, os.getpid(), helper.pid)
        while True:
            time.sleep(0.05)

    def wait_forever(self, pid_file):
        _write_pid(pid_file, os.getpid())
        while True:
            time.sleep(0.05)

    def exit_hard(self, code):
        os._exit(code)

    def kill_self(self):
        os.kill(os.getpid(), signal.SIGKILL)

    def read_stdin(self):
        return input()

    def rendezvous(self, mine, theirs):
        Path(mine).write_text("here")
        deadline = time.monotonic() + 15
        while not Path(theirs).exists():
            if time.monotonic() > deadline:
                raise TimeoutError("the other job never ran alongside")
            time.sleep(0.01)
        return "met"

    def odd_result(self):
        return {"when": datetime(2026, 1, 2, 3, 4, 5), "items": {1}}

    def unencodable(self, path, kind):
        with open(path, "a") as f:  # one line per run of the body
            f.write(kind + "\\n")
        if kind == "tuple_keys":
            return {(1, 2): "x"}
        if kind == "huge_int":
            return 10**5000
        if kind == "str_raises":
            return [Unprintable()]
        if kind == "nan":
            return {"ratio": float("nan")}
        if kind == "circular":
            loop = []
            loop.append(loop)
            return loop
        deep = []
        for _ in range(100_000 if kind == "deep" else 250):
            deep = [deep]
        return deep

    def unprintable_error(self, path):
        with open(path, "a") as f:
            f.write("ran\\n")
        raise UnprintableError("never shown")

    def unstorable_error(self, size):
        raise AppError("a NUL \\x00, a lone surrogate \\udcff, then " + "x" * size)

    def leak(self, card, pin="0000", note=None):
        raise AppError(f"card {card} with pin {pin} declined ({note!r})")

    def forge(self):
        # a job that writes to the protocol's pipe (it found the child's writer): lines the parent must drop
        import gc
        [replies] = [o for o in gc.get_objects() if type(o).__name__ == "Replies"]
        replies.send({"id": 999999, "ok": True, "result": "forged"})
        replies._write(b"not json at all {\\n")
        replies._write(b"[1, 2]\\n")
        replies.send({"id": 999998, "ok": False})
        return "real"


class Unprintable:
    def __str__(self):
        raise RuntimeError("no str for you")


class UnprintableError(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class Following:
    # next_job() answers by what the job returned: a str as args, args JSON cannot hold, or an exception

    def go(self, path, kind):
        with open(path, "a") as f:
            f.write(kind + "\\n")
        return kind

    def next_job(self, kind):
        if kind == "str_args":
            return ("go", "abc")
        if kind == "set_args":
            return ("go", [{1, 2}])
        if kind == "nan_args":
            return ("go", [float("nan")])
        if kind == "raises":
            raise RuntimeError("no follow-up today")
        if kind == "int_method":
            return (7, [1])
        return ("go", ("tuple", "ok"))


class Chain:
    def first(self, x):
        return x + 1

    def second(self, x):
        return x * 10

    def next_job(self, result):
        if result == 2:
            return ("second", [result])
        if result == 3:
            return ("unit_jobs:add_fn", "", [result, 4])
        return None


def add_fn(a, b):
    return a + b
"""

ALLOWED: dict[str, list[str]] = {
    "unit_jobs.Jobs": [
        "add",
        "pid",
        "fail",
        "bad_value",
        "noisy",
        "stubborn",
        "wait_forever",
        "exit_hard",
        "kill_self",
        "read_stdin",
        "rendezvous",
        "odd_result",
        "_touch_private",
        "unencodable",
        "unprintable_error",
        "leak",
        "forge",
        "unstorable_error",
    ],
    "unit_jobs.Following": ["go"],
    "unit_jobs.Chain": ["first", "second"],
    "unit_jobs:add_fn": [],
    "unit_jobs_missing:add_fn": [],
}

_ids = count(1)


def make_job(target: str, method: str, *args: Any, **kwargs: Any) -> Job:
    return factories.make_job(id=next(_ids), target=target, method=method, args=args, kwargs=kwargs)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "unit_jobs.py").write_text(JOBS_MODULE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# Every pool test runs with each way of reading the children: the selector (POSIX) and the reader threads
# (what Windows uses, plain threads that run anywhere).
MUXES: dict[str, Callable[[], Mux]] = {"selector": SelectorMux, "thread": ThreadMux}


@pytest.fixture(params=sorted(MUXES))
def mux(request: pytest.FixtureRequest) -> Callable[[], Mux]:
    return MUXES[request.param]


def job_log(directory: Path) -> JobLog:
    """The log a pool writes what a child got wrong to: errors.log in `directory`."""
    return JobLog(directory / "jobs.log", directory / "errors.log")


@pytest.fixture
def make_pool(workdir: Path, mux: Callable[[], Mux]) -> Iterator[Callable[..., Pool]]:
    """Fresh pools for the tests that kill, crash or replace children; each stopped at the end."""
    pools: list[Pool] = []
    log = job_log(workdir)

    def make(size: int = 1, allowed: dict[str, list[str]] = ALLOWED, **options: Any) -> Pool:
        options.setdefault("kill_grace_s", 0.3)
        pool = Pool(size, allowed, log=log, _mux=mux(), **options)
        pool.start()
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.stop()
        pool.close()
    log.close()


@pytest.fixture(scope="module", params=sorted(MUXES))
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pool, Path]]:
    """One pool for the tests whose jobs leave their child alive and well (children are slow to start)."""
    directory = tmp_path_factory.mktemp("shared")
    (directory / "unit_jobs.py").write_text(JOBS_MODULE)
    log = job_log(directory)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)  # the children resolve targets from the directory they start in
        pool = Pool(1, ALLOWED, kill_grace_s=0.3, log=log, _mux=MUXES[request.param]())
        pool.start()
    yield pool, directory
    pool.stop()
    pool.close()
    log.close()


def warm(pool: Pool) -> None:
    """Run a job on every child, so each has imported errands (seconds, on a busy machine) before a test
    starts a job's timeout: the pool counts a job's timeout from submit."""
    jobs = [make_job("unit_jobs.Jobs", "pid") for _ in range(pool.idle())]
    for job in jobs:
        pool.submit(job, None)
    collect(pool, {job.id for job in jobs})


def until(condition: Callable[[], bool], pool: Pool | None = None, what: str = "condition") -> None:
    """Poll (through pool.wait when there is a pool, so it keeps supervising) until true or the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        if pool is not None:
            assert pool.wait(0.02) == []
        else:
            time.sleep(0.01)  # polling a condition, not waiting for time to pass


def collect(pool: Pool, job_ids: set[int]) -> dict[int, AttemptResult]:
    found: dict[int, AttemptResult] = {}
    deadline = time.monotonic() + DEADLINE_S
    while set(found) != job_ids:
        if time.monotonic() > deadline:
            pytest.fail(f"no result for jobs {job_ids - set(found)}")
        for result in pool.wait(0.2):
            assert result.job.id in job_ids, f"unexpected result {result}"
            found[result.job.id] = result
    return found


def run(pool: Pool, job: Job, timeout_s: float | None = None) -> AttemptResult:
    until(lambda: pool.idle() > 0, pool, "an idle child")
    pool.submit(job, timeout_s)
    return collect(pool, {job.id})[job.id]


def pids_in(path: Path, pool: Pool) -> list[int]:
    until(path.exists, pool, f"{path.name}")
    return [int(part) for part in path.read_text().split()]


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting for whoever adopted it to reap it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# running, failing, refusing -----------------------------------------------------------------------------


def test_a_job_completes_with_its_result(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    job = make_job("unit_jobs.Jobs", "add", 2, b=3)
    result = run(pool, job)
    assert result.ending is Ending.COMPLETED
    assert result.result == 5
    assert result.error is None
    assert result.job == job
    assert result.duration_s >= 0
    assert result.follow_up is None
    # a function target
    assert run(pool, make_job("unit_jobs:add_fn", "", 40, 2)).result == 42


def test_a_raising_job_fails_with_type_message_traceback_and_mro(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    result = run(pool, make_job("unit_jobs.Jobs", "fail", "Simulated job failure"))
    assert result.ending is Ending.FAILED
    assert result.error is not None
    assert result.error.type == "unit_jobs.AppError"
    assert result.error.message == "Simulated job failure"
    assert result.error.mro == ("unit_jobs.AppError", "Exception", "BaseException")
    assert result.error.traceback is not None
    assert result.error.traceback.startswith("Traceback (most recent call last):")
    assert "raise AppError(message)" in result.error.traceback
    assert result.error.traceback.rstrip().endswith("unit_jobs.AppError: Simulated job failure")

    builtin = run(pool, make_job("unit_jobs.Jobs", "bad_value"))
    assert builtin.ending is Ending.FAILED and builtin.error is not None
    assert builtin.error.type == "ValueError"
    assert builtin.error.mro == ("ValueError", "Exception", "BaseException")
    assert "invalid literal for int()" in builtin.error.message


def test_a_job_whose_module_does_not_import_fails_without_refusal(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    result = run(pool, make_job("unit_jobs_missing:add_fn", "", 1, 2))
    assert result.ending is Ending.FAILED
    assert result.error is not None and result.error.type == "ModuleNotFoundError"


@pytest.mark.parametrize(
    ("target", "method", "how"),
    [
        ("os:system", "", "a shell command"),
        ("os", "system", "a module as a class"),
        ("os.path", "system", "a module path"),
        ("subprocess:getoutput", "", "a function"),
        ("unit_jobs.Jobs", "touch", "a method of an allowed class that is not allowed"),
        ("unit_jobs.Jobs", "_touch_private", "a private method even though it is listed"),
        ("unit_jobs:Jobs", "", "a class spelled as a function"),
    ],
)
def test_an_edited_row_is_refused_in_the_child_and_runs_nothing(
    shared: tuple[Pool, Path], target: str, method: str, how: str
) -> None:
    pool, directory = shared
    marker = directory / f"pwned-{next(_ids)}"
    args = [f"touch {marker}"] if target in ("os:system", "os", "os.path", "subprocess:getoutput") else [str(marker)]
    result = run(pool, make_job(target, method, *args))
    assert result.ending is Ending.REFUSED, how
    assert result.error is not None and result.error.type == "errands.errors.TargetNotAllowed"
    assert result.error.message.startswith("refused ")
    assert not marker.exists(), how
    # the child survives a refusal and runs the next job
    assert run(pool, make_job("unit_jobs.Jobs", "add", 1, 1)).result == 2


def test_printing_to_stdout_does_not_corrupt_the_protocol(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    first = run(pool, make_job("unit_jobs.Jobs", "noisy"))
    assert (first.ending, first.result) == (Ending.COMPLETED, "quiet")
    second = run(pool, make_job("unit_jobs.Jobs", "add", 3, 4))
    assert (second.ending, second.result) == (Ending.COMPLETED, 7)


def test_a_job_reading_stdin_gets_eof_instead_of_hanging_on_the_protocol(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    result = run(pool, make_job("unit_jobs.Jobs", "read_stdin"), timeout_s=10)
    assert result.ending is Ending.FAILED
    assert result.error is not None and result.error.type == "EOFError"
    assert run(pool, make_job("unit_jobs.Jobs", "add", 1, 2)).result == 3


def test_a_result_json_cannot_hold_travels_as_its_str(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    result = run(pool, make_job("unit_jobs.Jobs", "odd_result"))
    assert result.ending is Ending.COMPLETED
    assert result.result == {"when": "2026-01-02 03:04:05", "items": "{1}"}  # each odd value as its str()


def test_next_job_becomes_the_follow_up(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    same_class = run(pool, make_job("unit_jobs.Chain", "first", 1))
    assert same_class.result == 2
    assert same_class.follow_up == FollowUp("unit_jobs.Chain", "second", (2,))
    other = run(pool, make_job("unit_jobs.Chain", "first", 2))
    assert other.follow_up == FollowUp("unit_jobs:add_fn", "", (3, 4))
    assert run(pool, make_job("unit_jobs.Chain", "first", 5)).follow_up is None


# what a child reports after the body ran: never a reason to run it again ---------------------------------


def error_log(directory: Path) -> str:
    path = directory / "errors.log"
    return path.read_text() if path.exists() else ""


@pytest.mark.parametrize(
    ("kind", "stand_in"),
    [
        ("tuple_keys", "dict: TypeError: keys must be str, int, float, bool or None, not tuple"),
        ("huge_int", "int: ValueError: Exceeds the limit (4300 digits) for integer string conversion"),
        ("str_raises", "list: RuntimeError: no str for you"),
        ("circular", "list: ValueError: Circular reference detected"),
        ("nan", "dict: ValueError: Out of range float values are not JSON compliant"),  # `--json` stays JSON
        ("deep", "list: RecursionError: maximum recursion depth exceeded"),
        ("deepish", "list: nested deeper than 200 levels"),  # encodes, but too deep for every reader
    ],
)
def test_a_result_that_cannot_be_encoded_completes_with_a_stand_in(
    shared: tuple[Pool, Path], kind: str, stand_in: str
) -> None:
    pool, directory = shared
    ran = directory / f"ran-{kind}-{next(_ids)}"
    result = run(pool, make_job("unit_jobs.Jobs", "unencodable", str(ran), kind))
    assert result.ending is Ending.COMPLETED, result.error
    assert list(result.result) == ["unencodable"]
    assert result.result["unencodable"].startswith(stand_in)
    assert json.loads(json.dumps(result.result)) == result.result  # valid JSON, stored as is
    assert ran.read_text() == f"{kind}\n"  # the body ran once
    assert run(pool, make_job("unit_jobs.Jobs", "add", 1, 1)).result == 2  # and the child lives on


def test_an_exception_whose_str_raises_is_reported_as_a_failure(shared: tuple[Pool, Path]) -> None:
    pool, directory = shared
    ran = directory / f"ran-unprintable-{next(_ids)}"
    result = run(pool, make_job("unit_jobs.Jobs", "unprintable_error", str(ran)))
    assert result.ending is Ending.FAILED
    assert result.error is not None and result.error.type == "unit_jobs.UnprintableError"
    assert result.error.message == "<UnprintableError: str() failed>"
    assert result.error.traceback is not None and "raise UnprintableError" in result.error.traceback
    assert ran.read_text() == "ran\n"


def test_an_error_is_reported_with_safe_text_and_whole(shared: tuple[Pool, Path]) -> None:
    """No NUL (PostgreSQL's TEXT refuses it), no lone surrogate (not UTF-8): the child reports the error whole,
    and the store bounds it to its columns (tests/store/test_hostile_outcomes.py)."""
    result = run(shared[0], make_job("unit_jobs.Jobs", "unstorable_error", 100_000))
    assert result.ending is Ending.FAILED and result.error is not None
    message, traceback = result.error.message, result.error.traceback
    assert message == "a NUL \\x00, a lone surrogate \\udcff, then " + "x" * 100_000
    assert traceback is not None and traceback.rstrip().endswith("x" * 100)
    for text in (message, traceback):
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogate left


def sensitive_job(target: str, method: str, *args: Any, **kwargs: Any) -> Job:
    return factories.make_job(id=next(_ids), target=target, method=method, args=args, kwargs=kwargs, sensitive=True)


def test_a_sensitive_jobs_arguments_are_cut_out_of_its_error(shared: tuple[Pool, Path]) -> None:
    pool = shared[0]
    card, pin, note = "4242-4242-4242-4242", "9731", 'it\'s a "secret" \u00e9t\u00e9'
    result = run(pool, sensitive_job("unit_jobs.Jobs", "leak", card, pin=pin, note=[{"deep": note}]))
    assert result.ending is Ending.FAILED and result.error is not None
    assert result.error.message == "card *** with pin *** declined ([{'deep': '***'}])"
    assert result.error.traceback is not None
    for secret in (card, pin, "secret", "\u00e9t\u00e9"):
        assert secret not in result.error.message + result.error.traceback
    assert "raise AppError(" in result.error.traceback  # the rest of the story is still told
    # the same job, not sensitive: its error is left as it was
    plain = run(pool, make_job("unit_jobs.Jobs", "leak", card, pin=pin))
    assert plain.error is not None and plain.error.message == f"card {card} with pin {pin} declined (None)"


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("str_args", "TypeError: next_job() args must be a list of JSON values, got str"),
        ("set_args", "TypeError: next_job() args must be JSON values (no pickle): TypeError: Object of type set"),
        ("nan_args", "TypeError: next_job() args must be JSON values (no pickle): ValueError: Out of range float"),
        ("raises", "RuntimeError: no follow-up today"),
        ("int_method", "TypeError: next_job() must name the method (and target) with a str"),
    ],
)
def test_a_follow_up_enqueue_would_refuse_is_dropped_and_the_job_completes(
    shared: tuple[Pool, Path], kind: str, why: str
) -> None:
    pool, directory = shared
    ran = directory / f"ran-{kind}-{next(_ids)}"
    job = make_job("unit_jobs.Following", "go", str(ran), kind)
    result = run(pool, job)
    assert (result.ending, result.result, result.follow_up) == (Ending.COMPLETED, kind, None)
    assert ran.read_text() == f"{kind}\n"  # the body ran once, and only the follow-up was refused
    [line] = [line for line in error_log(directory).splitlines() if f" job={job.id} " in line]
    assert f"Refused job: follow-up of job {job.id}: {why}" in line


def test_follow_up_args_come_back_as_json_gives_them(shared: tuple[Pool, Path], tmp_path: Path) -> None:
    result = run(shared[0], make_job("unit_jobs.Following", "go", str(tmp_path / "ran"), "tuple"))
    assert result.follow_up == FollowUp("unit_jobs.Following", "go", ("tuple", "ok"))


def test_lines_a_child_should_not_send_are_logged_and_dropped(shared: tuple[Pool, Path]) -> None:
    pool, directory = shared
    job = make_job("unit_jobs.Jobs", "forge")
    result = run(pool, job)
    assert (result.ending, result.result) == (Ending.COMPLETED, "real")  # the job's own reply still counts
    dropped = [line for line in error_log(directory).splitlines() if f" job={job.id} " in line]
    assert len(dropped) == 4, dropped
    assert "dropped a reply for job 999999 while it runs job" in dropped[0]
    assert "dropped a reply it can't read (JSONDecodeError" in dropped[1]
    assert "b'not json at all {'" in dropped[1]
    assert "dropped a reply it can't read (ValueError: a JSON list, not an object)" in dropped[2]
    assert "dropped a reply for job 999998 while it runs job" in dropped[3]
    assert run(pool, make_job("unit_jobs.Jobs", "add", 2, 2)).result == 4


# stopping jobs ------------------------------------------------------------------------------------------


def test_a_timeout_kills_a_job_that_ignores_sigterm_and_what_it_started(
    make_pool: Callable[..., Pool], workdir: Path
) -> None:
    pool = make_pool(kill_grace_s=0.2)
    warm(pool)
    pid_file = workdir / "stubborn.pid"
    job = make_job("unit_jobs.Jobs", "stubborn", str(pid_file))
    pool.submit(job, 1.0)
    child_pid, helper_pid = pids_in(pid_file, pool)
    result = collect(pool, {job.id})[job.id]
    assert result.ending is Ending.TIMED_OUT
    assert result.error is not None and result.error.type == "JobTimeout"
    assert result.error.message.startswith("timed out after ")
    assert result.duration_s >= 1.0
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)  # reaped by the pool
    until(lambda: gone(helper_pid), what=f"the job's own child {helper_pid} to die")
    # a fresh child takes the next job
    assert run(pool, make_job("unit_jobs.Jobs", "add", 1, 2)).result == 3


def test_cancel_stops_a_running_job(make_pool: Callable[..., Pool], workdir: Path) -> None:
    pool = make_pool()
    pid_file = workdir / "forever.pid"
    job = make_job("unit_jobs.Jobs", "wait_forever", str(pid_file))
    until(lambda: pool.idle() > 0, pool, "an idle child")
    pool.submit(job, None)
    (pid,) = pids_in(pid_file, pool)
    assert pool.busy_jobs() == [job]
    assert pool.cancel(job.id + 1000) is False  # not running here
    assert pool.cancel(job.id) is True
    result = collect(pool, {job.id})[job.id]
    assert result.ending is Ending.CANCELLED
    assert result.error is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert pool.busy_jobs() == []
    assert run(pool, make_job("unit_jobs.Jobs", "add", 2, 2)).result == 4


def test_a_job_that_kills_its_process_crashes_and_the_child_is_replaced(make_pool: Callable[..., Pool]) -> None:
    pool = make_pool()
    pid = run(pool, make_job("unit_jobs.Jobs", "pid")).result["pid"]
    crashes = [
        ("exit_hard", (1,), "exit code 1"),
        ("exit_hard", (0,), "exit code 0"),
        ("kill_self", (), "exit code -9"),
    ]
    for method, args, code in crashes:
        result = run(pool, make_job("unit_jobs.Jobs", method, *args))
        assert result.ending is Ending.CRASHED, method
        assert result.error is not None and result.error.type == "ChildCrashed"
        assert code in result.error.message, result.error.message
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # the dead child was reaped
        after = run(pool, make_job("unit_jobs.Jobs", "pid"))  # a fresh child runs the next job
        assert after.ending is Ending.COMPLETED
        assert after.result["pid"] != pid
        pid = after.result["pid"]


def test_children_are_replaced_after_max_jobs_per_child(make_pool: Callable[..., Pool]) -> None:
    # each job is submitted as soon as the pool reports an idle child: a child retired the moment its last
    # reply arrived (stdin closed) must not count as idle, or submit would write to its closed stdin
    pool = make_pool(max_jobs_per_child=2)
    pids = [run(pool, make_job("unit_jobs.Jobs", "pid", n)).result["pid"] for n in range(4)]
    assert pids[0] == pids[1]
    assert pids[2] == pids[3]
    assert pids[0] != pids[2]
    assert os.getpid() not in pids
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_two_children_run_jobs_at_the_same_time(make_pool: Callable[..., Pool], workdir: Path) -> None:
    pool = make_pool(2)
    until(lambda: pool.idle() == 2, pool, "two idle children")
    a = make_job("unit_jobs.Jobs", "rendezvous", str(workdir / "a"), str(workdir / "b"))
    b = make_job("unit_jobs.Jobs", "rendezvous", str(workdir / "b"), str(workdir / "a"))
    pool.submit(a, None)
    pool.submit(b, None)
    assert pool.idle() == 0
    with pytest.raises(RuntimeError, match="no idle child"):
        pool.submit(make_job("unit_jobs.Jobs", "add", 1, 1), None)
    results = collect(pool, {a.id, b.id})
    assert [results[j.id].result for j in (a, b)] == ["met", "met"]


@pytest.mark.parametrize(("release", "ending", "size"), [(True, Ending.RELEASED, 2), (False, Ending.CANCELLED, 1)])
def test_stop_ends_running_jobs_and_every_child(
    workdir: Path, mux: Callable[[], Mux], release: bool, ending: Ending, size: int
) -> None:
    pool = Pool(size, ALLOWED, kill_grace_s=0.3, _mux=mux())  # not make_pool: this test stops it itself
    pool.start()
    until(lambda: pool.idle() == size, pool, "idle children")
    pid_file = workdir / "forever.pid"
    job = make_job("unit_jobs.Jobs", "wait_forever", str(pid_file))
    pool.submit(job, None)
    (pid,) = pids_in(pid_file, pool)
    ended = pool.stop(release_running=release)
    assert [(r.job.id, r.ending) for r in ended] == [(job.id, ending)]
    assert pool.idle() == 0 and pool.busy_jobs() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# process creation ---------------------------------------------------------------------------------------


def test_children_get_their_own_session(shared: tuple[Pool, Path]) -> None:
    assert child_popen_kwargs() == {"start_new_session": True}
    pid = run(shared[0], make_job("unit_jobs.Jobs", "pid")).result["pid"]
    assert os.getpgid(pid) == pid  # the leader of its own group: killpg reaches what the job started
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) != os.getpgid(0)


def test_spawn_kwargs_for_windows_and_posix(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "detached.log"
    nt = spawn_kwargs(log_file, platform="nt")
    try:
        assert nt["creationflags"] == DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP == 0x8 | 0x200
        assert "start_new_session" not in nt
        assert nt["stdin"] is subprocess.DEVNULL
        assert nt["stdout"] is nt["stderr"]
        assert nt["close_fds"] is True
    finally:
        nt["stdout"].close()
    assert log_file.exists()
    posix = spawn_kwargs(log_file, platform="posix")
    try:
        assert posix["start_new_session"] is True
        assert "creationflags" not in posix
        assert posix["stdin"] is subprocess.DEVNULL
    finally:
        posix["stdout"].close()


def test_the_windows_branch_of_the_process_calls() -> None:
    """The one seam with Windows-only calls (worker/oscalls.py), its Windows branch taken on POSIX."""
    assert child_popen_kwargs("nt") == {"creationflags": CREATE_NEW_PROCESS_GROUP}
    assert child_popen_kwargs("posix") == {"start_new_session": True}
    # TerminateProcess is Popen.terminate(), which POSIX runs as a SIGTERM to the process: watchable here
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_child(proc, force=False, platform="nt")
    assert proc.wait(timeout=DEADLINE_S) == -signal.SIGTERM
    stop_child(proc, force=True, platform="nt")  # a child already gone is no error
    stop_child(proc, force=True)


def mux_events(mux: Mux, count: int) -> list[Event]:
    """`count` events from the mux, each awaited under the deadline (a reader thread delivers them late)."""
    events: list[Event] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(events) < count:
        assert time.monotonic() < deadline, f"only {events} of {count} events"
        events += mux.poll(0.1)
    assert len(events) == count, events
    return events


@pytest.mark.parametrize("kind", sorted(MUXES))
def test_a_mux_gives_whole_lines_wake_ups_and_the_end_of_a_stream(kind: str) -> None:
    mux = MUXES[kind]()
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd, "rb") as stream:
        mux.add("child", stream)
        assert mux.poll(0.0) == []
        os.write(write_fd, b"one\ntw")  # a line and a half
        assert mux_events(mux, 1) == [("child", b"one")]
        os.write(write_fd, b"o\nthree\n")
        assert mux_events(mux, 2) == [("child", b"two"), ("child", b"three")]
        mux.wake()
        assert mux_events(mux, 1) == [(None, None)]
        os.close(write_fd)
        assert mux_events(mux, 1) == [("child", None)]
        mux.close()


def test_the_child_module_runs_jobs_over_its_protocol_directly(workdir: Path) -> None:
    """The wire format, without the pool: batches of jobs in, one JSON line out per job (with its duration),
    job prints kept off it."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "errands.worker.child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    first = [
        {"id": 1, "target": "unit_jobs.Jobs", "method": "noisy", "args": [], "kwargs": {}},
        {"id": 2, "target": "unit_jobs.Jobs", "method": "add", "args": [1], "kwargs": {"b": 2}},
    ]
    second = [{"id": 3, "target": "os:system", "method": "", "args": ["true"], "kwargs": {}}]
    lines = [json.dumps({"allowed_jobs": ALLOWED}), json.dumps({"jobs": first}), json.dumps({"jobs": second})]
    out, _ = proc.communicate("\n".join(lines) + "\n", timeout=DEADLINE_S)
    replies = [json.loads(line) for line in out.splitlines()]
    assert replies[0] == {"ready": True}
    durations = [reply.pop("s") for reply in replies[1:]]
    assert all(isinstance(d, float) and 0 <= d < DEADLINE_S for d in durations)
    assert replies[1] == {"id": 1, "ok": True, "result": "quiet", "next": None}
    assert replies[2] == {"id": 2, "ok": True, "result": 3, "next": None}
    assert replies[3]["id"] == 3 and replies[3]["ok"] is False and replies[3]["refused"] is True
    assert len(replies) == 4
    assert proc.returncode == 0  # stdin closed: the child's loop ends once its jobs are done


def test_sigterm_reaches_a_plain_job(make_pool: Callable[..., Pool], workdir: Path) -> None:
    """A job that doesn't ignore SIGTERM dies from it, well before the SIGKILL grace."""
    pool = make_pool(kill_grace_s=60)
    warm(pool)
    pid_file = workdir / "plain.pid"
    job = make_job("unit_jobs.Jobs", "wait_forever", str(pid_file))
    pool.submit(job, 1.0)
    (pid,) = pids_in(pid_file, pool)
    result = collect(pool, {job.id})[job.id]
    assert result.ending is Ending.TIMED_OUT
    assert result.duration_s < 30  # SIGKILL would only follow after 60 s
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
