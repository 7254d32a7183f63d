"""The worker tests' harness: a project directory of its own per test, real worker processes, real databases.

Each test gets a `project`: a directory in tmp_path with an errands.toml (allow-list for the job module
below, log files inside the directory) and `wjobs.py`, the jobs the tests run. Workers are real
`python -m errands worker` processes in a new session each; every process a test starts is killed in the
fixture's teardown (by process group, then every process still working in the project directory: children,
detached processes and the jobs' own subprocesses all inherit that cwd).

Waits poll the database (or a file) against a deadline: `wait_for(predicate, timeout)`. No fixed sleeps.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from errands.client import Client, JobRequest
from errands.jobs import Attempt, Job, JobState
from errands.settings import Settings
from errands.store import SqlStore

T = TypeVar("T")

JOBS_MODULE = "wjobs"
JOB_NAMES = (
    "noop",
    "record",
    "record_and_sleep",
    "sleep",
    "wait_for_file",
    "ignore_sigterm_and_sleep",
    "kill_self",
    "fail",
)

# Short timings for every process a test starts (and for the in-process Client's Settings).
TIMINGS = {
    "ERRANDS_LEASE_TIMEOUT": "2",
    "ERRANDS_HEARTBEAT_INTERVAL": "0.5",
    "ERRANDS_RESCUE_INTERVAL": "0.5",
    "ERRANDS_POLL_INTERVAL": "0.1",
    "JOB_RETRY_DELAY": "0",
}

WJOBS = textwrap.dedent(
    '''
    """The worker tests' jobs. Every file they write lives next to this module (the project directory)."""

    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    HERE = Path(__file__).resolve().parent


    def _append(name, line):
        # one write on an O_APPEND descriptor: lines from concurrent processes never interleave
        fd = os.open(HERE / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


    def noop():
        return None


    def record(i):
        _append("record.txt", f"{i} {os.getpid()}\\n")
        return i


    def record_and_sleep(i, seconds):
        record(i)
        time.sleep(seconds)
        return i


    def sleep(seconds):
        time.sleep(seconds)
        return seconds


    def wait_for_file(name, limit=120):
        """Write this process's pid to <name>.started, block until the file <name> exists, then <name>.done."""
        _append(f"{name}.started", f"{os.getpid()}\\n")
        path = HERE / name
        deadline = time.monotonic() + limit
        while not path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never appeared")
            time.sleep(0.02)
        _append(f"{name}.done", f"{os.getpid()}\\n")
        return name


    def ignore_sigterm_and_sleep(seconds):
        """Ignore SIGTERM (so does the subprocess: an ignored signal stays ignored across exec), record both
        pids, sleep."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = subprocess.Popen(["sleep", str(seconds)])
        _append("sigterm.pids", f"{os.getpid()} {grandchild.pid}\\n")
        time.sleep(seconds)
        return seconds


    def kill_self():
        _append("crash.pids", f"{os.getpid()}\\n")
        os.kill(os.getpid(), signal.SIGKILL)


    def fail():
        raise RuntimeError("boom")
    '''
).lstrip()


# waiting -------------------------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, what: str = "") -> T:
    """Poll `predicate` until it returns something truthy (returned) or `timeout` seconds pass (AssertionError)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate!r} (last: {last!r})")
        time.sleep(interval)


# processes -----------------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Whether the process exists and is not a zombie (orphans are reparented to an init that may not reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (ppid, cwd or "") for every process this user can see."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            cwd = ""
        table[int(entry.name)] = (ppid, cwd)
    return table


def children_of(pid: int) -> list[int]:
    """Every child process of `pid`, zombies included."""
    return [child for child, (ppid, _) in _proc_table().items() if ppid == pid]


def processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (everything a test's processes started)."""
    where = str(directory.resolve())
    return [pid for pid, (_, cwd) in _proc_table().items() if cwd == where and pid != os.getpid() and pid_alive(pid)]


@dataclass
class Proc:
    """A process a test started in its own session."""

    popen: subprocess.Popen[str]
    name: str

    @property
    def pid(self) -> int:
        return self.popen.pid

    def signal(self, signum: int) -> None:
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def read_line(self, timeout: float) -> str:
        """The next line it prints, waiting at most `timeout` seconds."""
        assert self.popen.stdout is not None
        ready, _, _ = select.select([self.popen.stdout], [], [], timeout)
        if not ready:
            raise AssertionError(f"{self.name} printed nothing within {timeout}s")
        return self.popen.stdout.readline()

    def output(self) -> str:
        """Everything it printed (stdout and stderr together), once it has exited."""
        try:
            out, _ = self.popen.communicate(timeout=5)
        except subprocess.TimeoutExpired as exc:  # a process it left behind holds the pipe
            return f"{exc.output or ''}(output still open)"
        return out or ""


# the project -------------------------------------------------------------------------------------------


@dataclass
class Project:
    """Test modules reach every helper through this fixture (they can't import this conftest by name)."""

    dir: Path
    db_url: str
    procs: list[Proc] = field(default_factory=list)
    _clients: list[Client] = field(default_factory=list)

    wait_for = staticmethod(wait_for)
    pid_alive = staticmethod(pid_alive)
    children_of = staticmethod(children_of)

    # files
    @property
    def log_file(self) -> Path:
        return self.dir / "logs" / "jobs.log"

    @property
    def error_log_file(self) -> Path:
        return self.dir / "logs" / "errors.log"

    @property
    def backend(self) -> str:
        return self.db_url.split(":", 1)[0]

    def read(self, name: str) -> str:
        path = self.dir / name
        return path.read_text() if path.exists() else ""

    def pids(self, name: str) -> list[int]:
        """The pids a job wrote to `name`, one per line (the first column)."""
        return [int(line.split()[0]) for line in self.read(name).splitlines() if line.strip()]

    def records(self) -> list[tuple[int, int]]:
        """(i, pid) per execution of record(i), in the order they ran."""
        return [(int(i), int(pid)) for i, pid in (line.split() for line in self.read("record.txt").splitlines())]

    def record_counts(self) -> Counter[int]:
        return Counter(i for i, _ in self.records())

    def touch(self, name: str) -> None:
        (self.dir / name).write_text("go\n")

    def log_text(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    # the database, in this process
    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ERRANDS_", "JOB_"))}
        env.update(TIMINGS)
        env["ERRANDS_DATABASE_URL"] = self.db_url
        env["PYTHONUNBUFFERED"] = "1"
        env.update(extra)
        return env

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.db_url,
            "allowed_jobs": {f"{JOBS_MODULE}:{name}": [] for name in JOB_NAMES},
            "log_file": self.log_file,
            "error_log_file": self.error_log_file,
            "lease_timeout": 2.0,
            "heartbeat_interval": 0.5,
            "rescue_interval": 0.5,
            "poll_interval": 0.1,
            "retry_delay": 0.0,
        }
        values.update(overrides)
        return Settings(**values)

    def client(self, **overrides: Any) -> Client:
        client = Client(self.settings(**overrides), SqlStore(self.db_url))
        self._clients.append(client)
        return client

    @property
    def main(self) -> Client:
        """The one in-process Client the helpers share."""
        if not self._clients:
            self.client()
        return self._clients[0]

    @property
    def store(self) -> SqlStore:
        store = self.main._store  # the tests look beneath the Client's API
        assert isinstance(store, SqlStore)
        return store

    def request(self, name: str, *args: Any, **options: Any) -> JobRequest:
        return JobRequest(f"{JOBS_MODULE}:{name}", "", args=args, **options)

    def enqueue(self, name: str, *args: Any, **options: Any) -> int:
        return self.main.enqueue(self.request(name, *args, **options))

    def job(self, job_id: int) -> Job:
        return self.store.job_get(job_id)

    def attempts(self, job_id: int) -> list[Attempt]:
        return self.store.job_attempts(job_id)

    def outcomes(self, job_id: int) -> list[str | None]:
        return [a.outcome.value if a.outcome else None for a in self.attempts(job_id)]

    def wait_status(self, job_id: int, *states: JobState, timeout: float = 30) -> Job:
        def reached() -> Job | None:
            job = self.job(job_id)
            return job if job.status in states else None

        return wait_for(reached, timeout, what=f"job {job_id} to be {'/'.join(states)}")

    def wait_file(self, name: str, lines: int = 1, timeout: float = 30) -> list[int]:
        """Wait until `name` has at least `lines` lines; return the pids written there."""
        return wait_for(
            lambda: len(self.pids(name)) >= lines and self.pids(name), timeout, what=f"{lines} line(s) in {name}"
        )

    # processes
    def spawn(self, argv: Sequence[str], name: str, env: dict[str, str] | None = None) -> Proc:
        popen = subprocess.Popen(
            list(argv),
            cwd=self.dir,
            env=env or self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        proc = Proc(popen, name)
        self.procs.append(proc)
        return proc

    def slow_child_boot(self, seconds: float) -> dict[str, str]:
        """Environment that makes every `errands.worker.child` process sleep `seconds` as it boots (a
        sitecustomize on PYTHONPATH), as a loaded machine or a heavy import would."""
        boot = self.dir / "boot"
        boot.mkdir(exist_ok=True)
        slow = f"import sys, time\n\nif 'errands.worker.child' in sys.orig_argv:\n    time.sleep({seconds!r})\n"
        (boot / "sitecustomize.py").write_text(slow)
        return {"PYTHONPATH": str(boot)}

    def start_worker(self, *args: str, **env: str) -> Proc:
        return self.spawn([sys.executable, "-m", "errands", "worker", *args], "worker", self.env(**env))

    def wait_registered(self, worker: Proc, timeout: float = 30) -> None:
        """Until the worker's row is in the database: its signal handlers are in place by then."""
        wait_for(
            lambda: any(w.pid == worker.pid for w in self.store.workers_list(alive_within_s=3600)),
            timeout,
            what=f"worker pid {worker.pid} to register",
        )

    def cli(self, *args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "errands", *args],
            cwd=self.dir,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def close(self) -> None:
        for proc in self.procs:
            proc.kill_group()
        # children in sessions of their own, detached processes, the jobs' subprocesses: all work here (and
        # an orphaned child still holds its worker's stderr, our pipe, open)
        for _ in range(3):
            left = processes_in(self.dir)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            wait_for(lambda: not processes_in(self.dir), 5, what="the project's processes to die")
        for proc in self.procs:
            try:
                proc.popen.communicate(timeout=10)
            except (subprocess.TimeoutExpired, ValueError):
                pass
            finally:
                if proc.popen.stdout is not None:
                    proc.popen.stdout.close()
        for client in self._clients:
            client.close()


@pytest.fixture
def project(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    root = tmp_path / "project"
    (root / "logs").mkdir(parents=True)
    (root / f"{JOBS_MODULE}.py").write_text(WJOBS)
    allowed = "\n".join(f'"{JOBS_MODULE}:{name}" = []' for name in JOB_NAMES)
    (root / "errands.toml").write_text(
        f"log_file = {json.dumps(str(root / 'logs' / 'jobs.log'))}\n"
        f"error_log_file = {json.dumps(str(root / 'logs' / 'errors.log'))}\n"
        f"\n[allowed_jobs]\n{allowed}\n"
    )
    # the in-process Settings read this project's file, not the repository's
    monkeypatch.setenv("ERRANDS_CONFIG", str(root / "errands.toml"))
    for key in [k for k in os.environ if k.startswith(("ERRANDS_", "JOB_")) and k != "ERRANDS_CONFIG"]:
        monkeypatch.delenv(key)
    proj = Project(root, db_url)
    try:
        yield proj
    finally:
        proj.close()
