"""The job log and the error log: plain lines, appended (O_APPEND) by every process that runs jobs.

Each line: `<UTC time> <LEVEL> job=<id> attempt=<n> <message>`. Sensitive jobs show redacted arguments. A line
is cut at MAX_LINE characters (the database keeps the whole value).

The files rotate by size (`Rotation`: settings.log_max_bytes, log_backups): the writer that takes a file past
the limit renames it to `<name>.1` (`.1` to `.2`, ..., the oldest dropped) under an exclusive advisory lock
on `<name>.lock`, while every append holds it shared, and each writer reopens the path once the file there is
no longer the one it holds (a stat per append). So several processes append to the same files and no line is
lost or written into a renamed file. (Windows: no lock; a rename of a file open elsewhere fails, and the file
grows on until it can be.)

Every line can also go to a sink (`LogSink`, given by the runtime: errands.logship ships the lines to the
database in batches), as `LogRow`s: (file "job" or "error", job id, the line as the file has it, without
its newline).

A log is a record of what happened, never a reason for it to fail: the paths are checked when the settings
load, and a write that fails later (a full disk) is reported once on stderr and dropped.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from errands.jobs import ErrorInfo, Job, NewJob
from errands.settings import Settings

try:
    import fcntl
except ImportError:  # Windows: no advisory locks
    fcntl = None  # type: ignore[assignment]

MAX_LINE = 2000  # characters of one line's message: a 10 MB argument is not written whole into the log
LOG_FILES = ("job", "error")  # the two files, as the database and the API name them
LogRow = tuple[str, int | None, str]  # (file, job id, the file's line without its newline)


class LogSink(Protocol):
    def send(self, rows: list[LogRow]) -> None:
        """Take a batch of lines, quickly (no I/O on the caller's thread); never raises."""
        ...

    def close(self) -> None:
        """Deliver what was sent, then stop."""
        ...


@dataclass(frozen=True)
class Rotation:
    max_bytes: int  # a file that reaches this size is renamed to <name>.1
    backups: int  # renamed files kept (<name>.1 .. <name>.N); 0: the full file is removed


def open_log(settings: Settings, sink: LogSink | None = None) -> JobLog:
    """The settings' two files, rotated as they say."""
    rotation = Rotation(settings.log_max_bytes, settings.log_backups)
    return JobLog(settings.log_file, settings.error_log_file, rotation=rotation, sink=sink)


_Entry = tuple[str, int | None]  # text (whole lines, each ending in a newline), the job id of its lines


class JobLog:
    def __init__(
        self, log_file: Path, error_log_file: Path, *, rotation: Rotation | None = None, sink: LogSink | None = None
    ) -> None:
        self._files = (_LogFile(log_file, rotation), _LogFile(error_log_file, rotation))
        self._sink = sink
        self._lock = threading.Lock()
        self._held: tuple[list[_Entry], list[_Entry]] | None = None  # lines waiting for flush(), in hold mode

    def hold(self) -> None:
        """From now on lines wait for flush(): one write per file per step of a busy loop."""
        with self._lock:
            self._held = self._held or ([], [])

    def flush(self) -> None:
        with self._lock:
            for which, entries in enumerate(self._held or ()):
                if entries:
                    self._out(which, entries)
                    entries.clear()

    def close(self) -> None:
        self.flush()
        with self._lock:
            for file in self._files:
                file.close()
        if self._sink is not None:
            self._sink.close()

    def _write(self, which: int, level: str, job_id: int | None, attempt: int | None, message: str) -> None:
        self._emit(which, [(_line(level, job_id, attempt, message), job_id)])

    def _emit(self, which: int, entries: list[_Entry]) -> None:
        with self._lock:
            if self._held is not None:
                self._held[which].extend(entries)
            else:
                self._out(which, entries)

    def _out(self, which: int, entries: list[_Entry]) -> None:
        """One write to the file; the lines to the sink."""
        text = "".join(entry[0] for entry in entries)
        # backslashreplace: a lone surrogate in a job's error must not stop the line
        self._files[which].append(text.encode("utf-8", errors="backslashreplace"))
        if self._sink is not None:
            self._sink.send(_rows(LOG_FILES[which], entries))

    def info(self, job: Job | None, message: str, attempt: int | None = None) -> None:
        self._write(0, "INFO", job.id if job else None, attempt, message)

    def error(self, job: Job | None, message: str, attempt: int | None = None, *, also_job_log: bool = True) -> None:
        if also_job_log:
            self._write(0, "ERROR", job.id if job else None, attempt, message)
        self._write(1, "ERROR", job.id if job else None, attempt, message)

    # the Laravel runner's lines ----------------------------------------------------------------------------------

    def enqueued(self, job_ids: Sequence[int], news: Sequence[NewJob]) -> None:
        """One line per job; a batch's lines go out in one write."""
        entries: list[_Entry] = []
        for job_id, new in zip(job_ids, news, strict=True):
            name = f"{new.target}::{new.method}" if new.method else new.target
            message = f"Job queued: {name} on {new.queue} priority={new.priority}"
            entries.append((_line("INFO", job_id, None, message), job_id))
        self._emit(0, entries)

    def dispatched(self, job_id: int) -> None:
        self._write(0, "INFO", job_id, None, f"Job {job_id} dispatched to a detached process")

    def executing(self, job: Job) -> None:
        args, kwargs = job.shown_args()
        payload: dict[str, object] = {"params": args}
        if kwargs:
            payload["kwargs"] = kwargs
        head = _head("INFO", job.id, job.attempts)  # two lines, one stamp: a busy worker writes many
        executing = _cut(f"Executing job: {job.display_name} {json.dumps(payload)}")
        text = f"{head} {executing}\n{head} Job {job.id} status: running\n"
        self._emit(0, [(text, job.id)])

    def status(self, job: Job, status: str, attempt: int | None = None) -> None:
        self.info(job, f"Job {job.id} status: {status}", attempt)

    def completed(self, job: Job, duration_s: float) -> None:
        head = _head("INFO", job.id, job.attempts)
        text = f"{head} Job completed: {job.display_name} in {duration_s:.3f}s\n{head} Job {job.id} status: completed\n"
        self._emit(0, [(text, job.id)])

    def attempt_failed(self, job: Job, error: ErrorInfo, what: str = "failed") -> None:
        detail = f"Job {job.id} attempt {job.attempts} {what}: {error.type}: {error.message}"
        if error.traceback:
            detail += "\n" + error.traceback.rstrip()
        self.error(job, detail, job.attempts)

    def retrying(self, job: Job, delay_s: float) -> None:
        self.info(job, f"Job {job.id} will retry in {delay_s:.3f}s", job.attempts)
        self.status(job, "pending", job.attempts)

    def failed(self, job: Job, error: ErrorInfo) -> None:
        self.error(job, f"Job {job.id} failed after {job.attempts} attempts: {error.message}", job.attempts)
        self.status(job, "failed", job.attempts)

    def cancelled(self, job: Job) -> None:
        self.info(job, f"Job cancelled: {job.id}", job.attempts)
        self.status(job, "cancelled", job.attempts)

    def refused(self, target: str, method: str, reason: str, job: Job | None = None) -> None:
        shown = f"{target}::{method}" if method else target
        self.error(job, f"Refused job: {shown}: {reason}", job.attempts if job else None)


def _head(level: str, job_id: int | None, attempt: int | None) -> str:
    where = f"job={job_id if job_id is not None else '-'} attempt={attempt if attempt is not None else '-'}"
    return f"{_stamp()} {level} {where}"


def _line(level: str, job_id: int | None, attempt: int | None, message: str) -> str:
    head = _head(level, job_id, attempt)
    first, *rest = message.splitlines() or [""]  # every line break a reader knows, \x85 and \u2028 too
    if not rest:
        return f"{head} {_cut(first)}\n"
    # a traceback's lines carry the job and attempt too, so grep finds all of an attempt's story
    return f"{head} {_cut(first)}\n" + "".join(f"{head} | {_cut(more)}\n" for more in rest)


def _cut(text: str) -> str:
    if len(text) <= MAX_LINE:
        return text
    return f"{text[:MAX_LINE]}... (cut: {len(text)} characters)"


_second: tuple[int, str] = (-1, "")
_last: tuple[float, str] = (0.0, "")
_REUSE_S = 0.0001


def _stamp() -> str:
    """Now as ISO-8601 UTC with microseconds and a Z (as clock.iso). A busy worker writes thousands of lines
    a second: the date and time part is formatted once a second, and lines within 0.1 ms share a stamp."""
    global _second, _last
    now = time.time()
    if 0.0 <= now - _last[0] < _REUSE_S:
        return _last[1]
    whole = int(now)
    if whole != _second[0]:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    _last = (now, f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z")
    return _last[1]


def _rows(file: str, entries: list[_Entry]) -> list[LogRow]:
    """The entries' lines as the file has them (an unencodable character backslash-escaped, as written)."""
    rows: list[LogRow] = []
    for text, job_id in entries:
        shown = text if text.isascii() else text.encode("utf-8", errors="backslashreplace").decode("utf-8")
        lines = shown.split("\n")
        lines.pop()  # the text ends with a newline
        rows.extend((file, job_id, line) for line in lines)
    return rows


class _LogFile:
    """One log file, appended with one write() per batch of lines; rotated by size (see the module's doc)."""

    def __init__(self, path: Path, rotation: Rotation | None) -> None:
        self.path = path
        self._rotation = rotation
        self._fd: int | None = None
        self._identity: tuple[int, int] = (0, 0)  # (device, inode) of the file self._fd is
        self._lock_fd: int | None = None
        self._failed = False  # reported already

    def append(self, data: bytes) -> None:
        try:
            if self._rotation is None:
                _write_all(self._open(), data)
                return
            with self._locked(shared=True):
                size = self._reopened_size()
                _write_all(self._open(), data)
            if size + len(data) >= self._rotation.max_bytes:
                self._rotate()
        except OSError as exc:
            self._lost(exc)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            info = os.fstat(self._fd)
            self._identity = (info.st_dev, info.st_ino)
        return self._fd

    def _reopened_size(self) -> int:
        """The size of the file at the path, reopened first if it is no longer the one held (rotated away)."""
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        if self._fd is not None and (info is None or (info.st_dev, info.st_ino) != self._identity):
            os.close(self._fd)
            self._fd = None
        if info is None or self._fd is None:
            info = os.fstat(self._open())
        return info.st_size

    def _rotate(self) -> None:
        """Under the exclusive lock: still over the limit (no other writer rotated it meanwhile)? Then shift."""
        assert self._rotation is not None
        with self._locked(shared=False):
            try:
                if os.stat(self.path).st_size < self._rotation.max_bytes:
                    return
            except FileNotFoundError:
                return
            backups = self._rotation.backups
            if backups == 0:
                os.remove(self.path)
                return
            for number in range(backups - 1, 0, -1):
                older = Path(f"{self.path}.{number}")
                if older.exists():
                    os.replace(older, f"{self.path}.{number + 1}")
            os.replace(self.path, f"{self.path}.1")

    @contextlib.contextmanager
    def _locked(self, *, shared: bool) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        if self._lock_fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _lost(self, exc: OSError) -> None:
        """The job's outcome is recorded already: losing its log line must not turn it into a crash."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if not self._failed:
            self._failed = True
            print(
                f"errands: cannot write the log {self.path}: {exc.strerror or exc}; its lines are lost",
                file=sys.stderr,
            )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
