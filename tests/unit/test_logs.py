"""JobLog: the Laravel runner's lines, job= and attempt= on every line, errors in both files, redaction."""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from errands.jobs import ErrorInfo, NewJob
from errands.logs import JobLog
from factories import make_job

LINE = re.compile(
    r"^(?P<time>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z) (?P<level>INFO|ERROR) "
    r"job=(?P<job>\d+|-) attempt=(?P<attempt>\d+|-) (?P<message>.*)$"
)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    # nested directories that don't exist yet: the log makes them
    return tmp_path / "logs" / "jobs.log", tmp_path / "logs" / "errors" / "jobs_errors.log"


@pytest.fixture
def log(paths: tuple[Path, Path]) -> Iterator[JobLog]:
    opened = JobLog(*paths)
    yield opened
    opened.close()


def lines(path: Path) -> list[re.Match[str]]:
    if not path.exists():
        return []
    raw = path.read_text(encoding="utf-8").splitlines()
    matches = [LINE.match(line) for line in raw]
    assert all(matches), raw  # every line has the time, level, job= and attempt=
    return [m for m in matches if m]


def messages(path: Path) -> list[str]:
    return [m["message"] for m in lines(path)]


def test_executing_writes_the_seeds_lines(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.executing(make_job())
    found = lines(paths[0])
    assert [m["message"] for m in found] == [
        'Executing job: examples.jobs.SampleJob::process {"params": ["test1", "test2"]}',
        "Job 7 status: running",
    ]
    assert all(m["level"] == "INFO" and m["job"] == "7" and m["attempt"] == "1" for m in found)
    assert not paths[1].exists()  # info goes to the job log only


def test_executing_shows_kwargs_when_there_are_some(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.executing(make_job(args=(1,), kwargs={"to": "a@example.com"}, attempts=2))
    first = lines(paths[0])[0]
    assert (
        first["message"]
        == 'Executing job: examples.jobs.SampleJob::process {"params": [1], "kwargs": {"to": "a@example.com"}}'
    )
    assert first["attempt"] == "2"


def test_life_cycle_lines(log: JobLog, paths: tuple[Path, Path]) -> None:
    job = make_job(attempts=2)
    log.enqueued([3], [NewJob("examples.jobs.SampleJob", "process", priority=5, queue="emails")])
    log.completed(job, 1.23456)
    log.retrying(job, 2.5)
    log.cancelled(job)
    assert messages(paths[0]) == [
        "Job queued: examples.jobs.SampleJob::process on emails priority=5",
        "Job completed: examples.jobs.SampleJob::process in 1.235s",
        "Job 7 status: completed",
        "Job 7 will retry in 2.500s",
        "Job 7 status: pending",
        "Job cancelled: 7",
        "Job 7 status: cancelled",
    ]
    attempts = [m["attempt"] for m in lines(paths[0])]
    assert attempts == ["-", "2", "2", "2", "2", "2", "2"]  # enqueued: no attempt yet
    assert not paths[1].exists()


def test_a_failed_attempt_goes_to_both_files_with_its_traceback_tagged(log: JobLog, paths: tuple[Path, Path]) -> None:
    try:
        raise RuntimeError("Simulated job failure")
    except RuntimeError as exc:
        tb = "".join(traceback.format_exception(exc))
    job = make_job(id=12, attempts=3)
    log.attempt_failed(job, ErrorInfo("RuntimeError", "Simulated job failure", tb))
    for path in paths:
        found = lines(path)
        assert len(found) == len(tb.rstrip().splitlines()) + 1
        assert found[0]["message"] == "Job 12 attempt 3 failed: RuntimeError: Simulated job failure"
        assert all(m["level"] == "ERROR" and m["job"] == "12" and m["attempt"] == "3" for m in found)
        # continuation lines carry the job and the attempt too, marked with "| "
        assert all(m["message"].startswith("| ") for m in found[1:])
        assert found[1]["message"] == "| Traceback (most recent call last):"
        assert found[-1]["message"] == "| RuntimeError: Simulated job failure"


def test_failed_for_good_errors_in_both_and_status_in_the_job_log(log: JobLog, paths: tuple[Path, Path]) -> None:
    job = make_job(attempts=3)
    log.failed(job, ErrorInfo("RuntimeError", "boom"))
    assert messages(paths[0]) == ["Job 7 failed after 3 attempts: boom", "Job 7 status: failed"]
    assert messages(paths[1]) == ["Job 7 failed after 3 attempts: boom"]
    assert [m["level"] for m in lines(paths[0])] == ["ERROR", "INFO"]


def test_timed_out_wording(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.attempt_failed(make_job(), ErrorInfo("JobTimeout", "timed out after 1.000s"), "timed out")
    assert messages(paths[1]) == ["Job 7 attempt 1 timed out: JobTimeout: timed out after 1.000s"]


def test_refused_without_a_job_has_placeholders(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.refused("os", "system", "not in allowed_jobs")
    for path in paths:
        found = lines(path)
        assert len(found) == 1
        assert (found[0]["job"], found[0]["attempt"]) == ("-", "-")
        assert found[0]["message"] == "Refused job: os::system: not in allowed_jobs"
    log.refused("os:system", "", "not in allowed_jobs", make_job(id=3, attempts=2))
    last = lines(paths[1])[-1]
    assert (last["job"], last["attempt"], last["message"]) == ("3", "2", "Refused job: os:system: not in allowed_jobs")


def test_error_only_to_the_error_log_when_asked(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.error(None, "store unreachable", also_job_log=False)
    assert messages(paths[1]) == ["store unreachable"]
    assert not paths[0].exists()


def test_sensitive_arguments_are_redacted(log: JobLog, paths: tuple[Path, Path]) -> None:
    job = make_job(sensitive=True, args=("4242-4242", "hunter2"), kwargs={"pin": "0000"})
    log.executing(job)
    text = paths[0].read_text(encoding="utf-8")
    assert "4242" not in text and "hunter2" not in text and "0000" not in text
    assert messages(paths[0])[0] == (
        'Executing job: examples.jobs.SampleJob::process {"params": ["***", "***"], "kwargs": {"pin": "***"}}'
    )


def test_lines_are_appended_across_instances(paths: tuple[Path, Path]) -> None:
    first, second = JobLog(*paths), JobLog(*paths)
    try:
        first.info(make_job(id=1), "one")
        second.info(make_job(id=2), "two")
        first.info(make_job(id=1), "three")
    finally:
        first.close()
        second.close()
    reopened = JobLog(*paths)
    try:
        reopened.info(None, "four")
    finally:
        reopened.close()
    assert messages(paths[0]) == ["one", "two", "three", "four"]
    assert [m["job"] for m in lines(paths[0])] == ["1", "2", "1", "-"]


def test_an_empty_message_is_still_one_tagged_line(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.info(make_job(), "", attempt=4)
    found = lines(paths[0])
    assert len(found) == 1 and found[0]["attempt"] == "4"


def test_held_lines_wait_for_flush_and_keep_their_order(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.hold()
    log.info(make_job(id=1), "one")
    log.error(make_job(id=2), "two")
    log.info(make_job(id=3), "three")
    assert not paths[0].exists() and not paths[1].exists()
    log.flush()
    assert messages(paths[0]) == ["one", "two", "three"]
    assert messages(paths[1]) == ["two"]
    log.info(make_job(id=4), "four")
    assert messages(paths[0]) == ["one", "two", "three"]
    log.close()  # close flushes what is held
    assert messages(paths[0]) == ["one", "two", "three", "four"]


# hostile data (issue 10): a log line is bounded, and a log that can't be written never fails the caller -------


def test_a_long_argument_is_cut_in_the_log_not_written_whole(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.executing(make_job(args=("x" * 10_000_000,)))
    log.attempt_failed(make_job(), ErrorInfo("ValueError", "y" * 1_000_000, "Traceback:\n" + "z" * 1_000_000))
    text = paths[0].read_text(encoding="utf-8")
    assert len(text) < 20_000
    executing = messages(paths[0])[0]
    assert executing.startswith('Executing job: examples.jobs.SampleJob::process {"params": ["xxx')
    assert executing.endswith("... (cut: 10000064 characters)")
    assert all(len(line) < 2_200 for line in text.splitlines())


def test_every_line_break_starts_a_tagged_line(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.attempt_failed(make_job(), ErrorInfo("ValueError", "a\rb\x0bc\x85d\u2028e", None))
    found = messages(paths[1])  # lines() checks every line has the time, level, job= and attempt=
    assert found == ["Job 7 attempt 1 failed: ValueError: a", "| b", "| c", "| d", "| e"]


def test_a_lone_surrogate_is_written_escaped(log: JobLog, paths: tuple[Path, Path]) -> None:
    log.attempt_failed(make_job(), ErrorInfo("UnicodeError", "bad \udcff byte", None))
    assert messages(paths[1]) == ["Job 7 attempt 1 failed: UnicodeError: bad \\udcff byte"]


def test_a_log_that_cannot_be_written_is_reported_once_and_never_raises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = JobLog(Path("/dev/full"), tmp_path / "errors.log")
    for _ in range(3):
        full.executing(make_job())
        full.error(make_job(), "still written to the error log")
    full.hold()
    full.status(make_job(), "completed")
    full.flush()
    full.close()
    reported = capsys.readouterr().err.splitlines()
    assert reported == ["errands: cannot write the log /dev/full: No space left on device; its lines are lost"]
    assert len(messages(tmp_path / "errors.log")) == 3
