"""Worker processes for the benchmark: start in a session of their own, sample memory, stop for sure.

Linux only (reads /proc): the process tree is found by scanning /proc/*/stat, memory comes from
/proc/<pid>/smaps_rollup, and every process is identified by (pid, start time) so a reused pid is never
signalled. errands' children run in sessions of their own (so the worker can kill a job's process group):
a signal to the worker's process group does not reach them, hence the bookkeeping of every process seen.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence

SAMPLE_S = 0.25  # memory sampling period (as peer-bench)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, start time in clock ticks) of a live process, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
    if fields[0] == b"Z":  # a zombie holds no memory and can't be killed again
        return None
    return int(fields[1]), int(fields[2]), int(fields[19])


def _all_parents() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                children.setdefault(st[0], []).append(int(entry))
    return children


def _memory(pid: int) -> tuple[int, int] | None:
    """(Rss, Pss) in bytes from smaps_rollup."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key == "Rss":
                    rss = int(rest.split()[0]) * 1024
                elif key == "Pss":
                    pss = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return rss, pss


class WorkerProcess:
    """One command (e.g. `errands worker`) in its own session, with its whole process tree tracked."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str, log_path: str) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        self.seen: set[tuple[int, int]] = set()  # (pid, start time) of every process of the tree ever seen
        self.peak_rss = self.peak_pss = self.peak_procs = 0
        self._lock = threading.Lock()
        self._stop_sampling = threading.Event()
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        root = _stat(self.pid)
        self._root_start = root[2] if root is not None else -1
        self._sampler = threading.Thread(target=self._sample_loop, name="bench-memory", daemon=True)
        self._sampler.start()

    # the tree and its memory ---------------------------------------------------------------------------

    def tree(self) -> list[int]:
        """Live pids under (and including) the root; remembers each one for the final kill."""
        root = _stat(self.pid)
        if root is None or root[2] != self._root_start:
            return []  # the root is gone (its orphans are in self.seen)
        children = _all_parents()
        out, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            st = _stat(pid)
            if st is None:
                continue
            with self._lock:
                self.seen.add((pid, st[2]))
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def sample(self) -> None:
        rss = pss = n = 0
        for pid in self.tree():
            mem = _memory(pid)
            if mem is not None:
                rss, pss, n = rss + mem[0], pss + mem[1], n + 1
        with self._lock:
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, n)

    def _sample_loop(self) -> None:
        while not self._stop_sampling.wait(SAMPLE_S):
            self.sample()

    def memory(self) -> dict[str, float]:
        return {
            "rss_mb": round(self.peak_rss / 2**20, 1),
            "pss_mb": round(self.peak_pss / 2**20, 1),
            "procs": self.peak_procs,
        }

    # life -----------------------------------------------------------------------------------------------

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 8192))
                return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _alive_seen(self) -> list[int]:
        with self._lock:
            items = list(self.seen)
        return [pid for pid, start in items if (st := _stat(pid)) is not None and st[2] == start]

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the root's process group, wait up to `grace`, then SIGKILL every process of the tree
        ever seen (and the process groups they lead). Idempotent; bounded by about grace + 6 s."""
        self._stop_sampling.set()
        self._sampler.join(timeout=5)
        self.tree()  # remember the current descendants before signalling
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and self.popen.poll() is None:
            self.tree()  # children spawned or orphaned meanwhile
            time.sleep(0.05)
        for _ in range(3):
            if self.popen.poll() is None:
                self.tree()
            alive = self._alive_seen()
            if not alive:
                break
            for pid in alive:
                st = _stat(pid)
                try:
                    if st is not None and st[1] == pid:  # a group leader: its group too (a job's own children)
                        os.killpg(pid, signal.SIGKILL)
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.1)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass


class Records:
    """Incremental reader of the records file the jobs append to: rows of (enqueue epoch, start epoch)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.rows: list[tuple[float, float]] = []

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return len(self.rows)
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        for line in lines:
            enq, done = line.split()
            self.rows.append((float(enq), float(done)))
        return len(self.rows)

    def wait(self, done: Callable[[int], bool], timeout: float, worker: WorkerProcess | None = None) -> str | None:
        """Poll until done(count); None on success, else why not (timeout, or the worker exited)."""
        deadline = time.monotonic() + timeout
        while not done(self.poll()):
            if worker is not None and (code := worker.exit_code()) is not None:
                if done(self.poll()):
                    return None
                return f"the worker exited (code {code}) after {len(self.rows)} jobs: {worker.log_tail(5)!r}"
            if time.monotonic() > deadline:
                return f"timeout: {len(self.rows)} jobs recorded after {timeout:g} s"
            time.sleep(0.02)
        return None
