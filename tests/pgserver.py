"""A throwaway PostgreSQL server for tests that stop, kill or restart their database.

The shared server on 5432 is never touched: each PgServer is a cluster of its own, made with `initdb` in a
temporary directory and served on a free port of 127.0.0.1 (no Unix socket outside its directory). Tests run
as root, which PostgreSQL refuses: the cluster then belongs to the `postgres` OS user and its processes run
as that user; run as anyone else, they run as that someone. Durability against a crash of the machine is off
(fsync, full_page_writes), not against a crash of the server: a commit acknowledged before
`stop("immediate")` is still there after start(). Memory is small: a start takes ~0.1-0.6 s, a restart
~0.07 s. `initdb` runs once per test process: each server copies that template cluster. The postmaster
dies with the thread that started it (PR_SET_PDEATHSIG), so a killed test run leaves no server behind
(start and stop a server from the test's own thread); its temporary directory then stays in /tmp.

Use it through the `pg_server` fixture (tests/conftest.py), which yields a started server and stops it
(immediately) even when the test fails:

    def test_survives_a_restart(pg_server: PgServer) -> None:
        store = SqlStore(pg_server.url)          # database "postgres", user "postgres", trust auth
        pg_server.stop(mode="immediate")         # "fast": clients are told (57P01); "immediate": a crash
        pg_server.start()                        # same port, same data: the URL still holds
        pg_server.restart(mode="fast")

Or on its own, as a context manager: `with PgServer() as server: ...`. `require_pg_binaries()` skips the
test with the reason when initdb or postgres are absent (and fails it under CI, where they must be there).
What the server wrote to stderr is in `server.log_path` (kept until the fixture ends; a failing start shows
its tail).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Literal

import psycopg
import pytest

StopMode = Literal["smart", "fast", "immediate"]
# the postmaster's shutdown signals (what pg_ctl stop -m sends)
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}
START_TIMEOUT_S = 60.0  # a loaded 2-core machine; a start takes ~0.3 s when idle
STOP_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "40",
    "max_wal_senders": "0",
    "wal_level": "minimal",
    "autovacuum": "off",
}


@dataclass(frozen=True)
class _Binaries:
    initdb: str
    postgres: str


@cache
def _binaries() -> _Binaries | str:
    """The newest PostgreSQL's initdb and postgres, or why there are none."""
    for bindir in [*sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True), ""]:
        initdb = shutil.which("initdb", path=bindir or None)
        postgres = shutil.which("postgres", path=bindir or None)
        if initdb and postgres:
            return _Binaries(initdb, postgres)
    return "no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin nor on PATH"


def _version(bindir: str) -> float:
    try:
        return float(Path(bindir).parent.name)
    except ValueError:
        return 0.0


def _run_as() -> pwd.struct_passwd | None:
    """The OS user the cluster runs as: `postgres` when we are root (PostgreSQL refuses root), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        return None


def require_pg_binaries() -> _Binaries:
    """The binaries, or skip (fail under CI) with the reason."""
    found = _binaries()
    problem = found if isinstance(found, str) else None
    if problem is None and os.geteuid() == 0 and _run_as() is None:
        problem = "running as root and there is no `postgres` OS user to run a PostgreSQL cluster as"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem} (CI must run the database-restart tests)")
        pytest.skip(problem)
    assert not isinstance(found, str)
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _owned_dir(prefix: str) -> Path:
    """A new temporary directory the cluster's user may write in."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    user = _run_as()
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _die_with_parent() -> None:
    """In the child, after it became the cluster's user (a change of user clears the setting): a killed test
    process takes its server with it (SIGQUIT: an immediate shutdown), instead of leaving it running."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


def _run(argv: list[str]) -> None:
    user = _run_as()
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=False,
        timeout=START_TIMEOUT_S * 2,
        user=user.pw_uid if user else None,
        group=user.pw_gid if user else None,
        extra_groups=[] if user else None,
        env={**os.environ, "LC_ALL": "C"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


_template: Path | None = None


def _template_cluster(binaries: _Binaries) -> Path:
    """A cluster made by initdb once per test process; each server copies it (~30 ms instead of ~2 s)."""
    global _template
    if _template is None:
        root = _owned_dir("errands-pg-template-")
        data = root / "data"
        _run([binaries.initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "-N"])
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _template = data
    return _template


class PgServer:
    """One throwaway cluster: start(), stop(mode), restart(mode), url, close(); a context manager."""

    def __init__(self) -> None:
        self._binaries = require_pg_binaries()
        self.root = _owned_dir("errands-pg-")
        self.data = self.root / "data"
        shutil.copytree(_template_cluster(self._binaries), self.data, symlinks=True)
        user = _run_as()
        if user is not None:
            for path in [self.data, *self.data.rglob("*")]:
                os.lchown(path, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self.log_path = self.root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """A URL errands accepts (database and user `postgres`, trust auth): it holds across restarts."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections; the port is the same as before."""
        if self.running:
            return
        user = _run_as()
        settings = {**_SETTINGS, "port": str(self.port), "unix_socket_directories": str(self.root)}
        argv = [self._binaries.postgres, "-D", str(self.data)]
        for name, value in settings.items():
            argv += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
                start_new_session=True,  # a Ctrl-C of pytest is not a shutdown signal for it
                preexec_fn=_die_with_parent,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if not self.running:
                raise RuntimeError(f"PostgreSQL did not start: {self._log_tail()}")
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT_S:g}s: {self._log_tail()}") from None
                time.sleep(0.05)

    def stop(self, mode: StopMode = "fast") -> None:
        """Stop the postmaster as `pg_ctl stop -m MODE` would, and wait until it is gone. "fast" ends every
        session (clients get 57P01) and shuts down cleanly; "immediate" kills everything at once (a crash:
        the next start recovers from the WAL)."""
        process = self._process
        if process is None or process.poll() is not None:
            self._process = None
            return
        process.send_signal(_STOP_SIGNALS[mode])
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(STOP_TIMEOUT_S)
        self._process = None

    def restart(self, mode: StopMode = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        """Stop at once and remove the cluster."""
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no server log)"

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
