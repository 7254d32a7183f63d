"""The job log and the error log: plain lines, appended (O_APPEND) by every process that runs jobs.

Each line: `<UTC time> <LEVEL> job=<id> attempt=<n> <message>`. Sensitive jobs show redacted arguments. A line
is cut at MAX_LINE characters (the database keeps the whole value).

A log is a record of what happened, never a reason for it to fail: the paths are checked when the settings
load, and a write that fails later (a full disk) is reported once on stderr and dropped.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from errands.jobs import ErrorInfo, Job, NewJob

MAX_LINE = 2000  # characters of one line's message: a 10 MB argument is not written whole into the log


class JobLog:
    def __init__(self, log_file: Path, error_log_file: Path) -> None:
        self._paths = (log_file, error_log_file)
        self._files: dict[Path, IO[str]] = {}
        self._lock = threading.Lock()
        self._held: dict[Path, list[str]] | None = None  # lines waiting for flush(), in hold mode
        self._failed: set[Path] = set()  # paths whose failure was reported already

    def hold(self) -> None:
        """From now on lines wait for flush(): one write per file per step of a busy loop."""
        with self._lock:
            self._held = self._held or {}

    def flush(self) -> None:
        with self._lock:
            for path, lines in (self._held or {}).items():
                if lines:
                    self._append(path, "".join(lines))
                    lines.clear()

    def close(self) -> None:
        self.flush()
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()

    def _write(self, path: Path, level: str, job_id: int | None, attempt: int | None, message: str) -> None:
        self._emit(path, _line(level, job_id, attempt, message))

    def _emit(self, path: Path, line: str) -> None:
        with self._lock:
            if self._held is not None:
                self._held.setdefault(path, []).append(line)
            else:
                self._append(path, line)

    def _append(self, path: Path, text: str) -> None:
        try:
            handle = self._files.get(path)
            if handle is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                # backslashreplace: a lone surrogate in a job's error must not stop the line
                handle = self._files[path] = path.open("a", encoding="utf-8", errors="backslashreplace")
            handle.write(text)
            handle.flush()
        except OSError as exc:
            self._lost(path, exc)

    def _lost(self, path: Path, exc: OSError) -> None:
        """The job's outcome is recorded already: losing its log line must not turn it into a crash."""
        handle = self._files.pop(path, None)
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass  # the buffered text it can't flush either
        if path not in self._failed:
            self._failed.add(path)
            print(f"errands: cannot write the log {path}: {exc.strerror or exc}; its lines are lost", file=sys.stderr)

    def info(self, job: Job | None, message: str, attempt: int | None = None) -> None:
        self._write(self._paths[0], "INFO", job.id if job else None, attempt, message)

    def error(self, job: Job | None, message: str, attempt: int | None = None, *, also_job_log: bool = True) -> None:
        if also_job_log:
            self._write(self._paths[0], "ERROR", job.id if job else None, attempt, message)
        self._write(self._paths[1], "ERROR", job.id if job else None, attempt, message)

    # the Laravel runner's lines ----------------------------------------------------------------------------------

    def enqueued(self, job_ids: Sequence[int], news: Sequence[NewJob]) -> None:
        """One line per job; a batch's lines go out in one write."""
        lines = []
        for job_id, new in zip(job_ids, news, strict=True):
            name = f"{new.target}::{new.method}" if new.method else new.target
            lines.append(_line("INFO", job_id, None, f"Job queued: {name} on {new.queue} priority={new.priority}"))
        self._emit(self._paths[0], "".join(lines))

    def dispatched(self, job_id: int) -> None:
        self._write(self._paths[0], "INFO", job_id, None, f"Job {job_id} dispatched to a detached process")

    def executing(self, job: Job) -> None:
        args, kwargs = job.shown_args()
        payload: dict[str, object] = {"params": args}
        if kwargs:
            payload["kwargs"] = kwargs
        head = _head("INFO", job.id, job.attempts)  # two lines, one stamp: a busy worker writes many
        executing = _cut(f"Executing job: {job.display_name} {json.dumps(payload)}")
        text = f"{head} {executing}\n{head} Job {job.id} status: running\n"
        self._emit(self._paths[0], text)

    def status(self, job: Job, status: str, attempt: int | None = None) -> None:
        self.info(job, f"Job {job.id} status: {status}", attempt)

    def completed(self, job: Job, duration_s: float) -> None:
        head = _head("INFO", job.id, job.attempts)
        text = f"{head} Job completed: {job.display_name} in {duration_s:.3f}s\n{head} Job {job.id} status: completed\n"
        self._emit(self._paths[0], text)

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
