"""Hostile input through the real `errands` command (issue 10): every bad input is one line and its documented
exit code (2 bad input, 3 not found, 6 configuration), never exit 70, and nothing is stored when it fails."""

from __future__ import annotations

import json
import resource
import subprocess
from typing import Any

import pytest
import sqlalchemy as sa

from errands.store import SqlStore
from errands.store.base import JobFilter, WorkerInfo
from errands.store.schema import jobs

SAMPLE = "examples.jobs.SampleJob"
HOSTILE_JOBS = '''"""Jobs whose data is hostile to whatever prints it."""


def fail_with(message):
    raise RuntimeError(message)


def not_a_number():
    return float("nan")
'''
FAIL_WITH = "hostile_jobs:fail_with"
NAN = "hostile_jobs:not_a_number"
MARKUP = "[/x] [bold]:smile:"


def assert_refused(result: Any, code: int, *needles: str) -> None:
    assert result.returncode == code, str(result)
    assert len(result.stderr_lines) == 1 and result.stderr_lines[0].startswith("errands: "), str(result)
    for needle in needles:
        assert needle in result.stderr, str(result)


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def hostile_cli(cli: Any) -> Any:
    (cli.root / "hostile_jobs.py").write_text(HOSTILE_JOBS, encoding="utf-8")
    # the lines go on in errands.toml's [allowed_jobs] table
    cli.write_config(extra=f'"{FAIL_WITH}" = []\n"{NAN}" = []\n')
    return cli


def stored_ids(cli: Any) -> list[int]:
    store = SqlStore(cli.db_url)
    try:
        return [job.id for job in store.jobs_list(JobFilter(limit=1000))]
    finally:
        store.close()


# subprocess probes, a few per item: tests/property/test_hostile_properties.py runs the rest in-process


@pytest.mark.backends("sqlite")  # the settings are checked before any database is opened
@pytest.mark.parametrize(
    ("command", "variable", "value", "key"),
    [
        ("run-job", "ERRANDS_RETRY_DELAY", "1e12", "retry_delay"),  # was: exit 70, the job left running
        ("run-job", "ERRANDS_LEASE_TIMEOUT", "inf", "lease_timeout"),
        ("enqueue", "ERRANDS_LOG_FILE", "/dev/full", "log_file"),  # was: exit 70 with the job stored
        ("run-job", "ERRANDS_LOG_FILE", "{root}", "log_file"),
        ("run-job", "ERRANDS_ERROR_LOG_FILE", "/dev/full", "error_log_file"),
        ("enqueue", "ERRANDS_ALLOWED_JOBS", "not json", "allowed_jobs"),
        ("enqueue", "ERRANDS_DATABASE_URL", "sqlite:///:memory:", "database_url"),  # was: exit 0, the job lost
    ],
)
def test_settings_that_would_fail_later_exit_6_before_anything_is_stored(
    cli: Any, command: str, variable: str, value: str, key: str
) -> None:
    result = cli.run(command, "examples.jobs.FailingJob", "process", env={variable: value.format(root=cli.root)})
    assert_refused(result, 6, f"config {key}: ")
    assert stored_ids(cli) == []  # no job stored, none left running


@pytest.mark.backends("sqlite")
def test_a_config_file_that_is_not_utf8_exits_6_naming_it(cli: Any) -> None:
    path = cli.root / "errands.toml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    assert_refused(cli.run("jobs", "list"), 6, "config errands.toml: not UTF-8")


@pytest.mark.backends("sqlite", "postgresql")
def test_bad_input_exits_2_or_3(cli: Any) -> None:
    assert_refused(cli.run("enqueue", SAMPLE, "process", "--at", "0001-01-01T00:00:00+05:00"), 2, "--at")
    assert_refused(cli.run("enqueue", SAMPLE, "process", "--args-json", f"[{'9' * 5000}]"), 2, "64-bit")
    assert_refused(cli.run("jobs", "show", str(2**63)), 3, "not found")
    assert stored_ids(cli) == []


@pytest.mark.backends("sqlite")  # what is printed is the same on every backend
def test_a_negative_priority_needs_no_double_dash(cli: Any) -> None:
    first = cli.enqueue(SAMPLE, "process", "a,b", "-5")  # was: "No such option: -5"
    second = cli.enqueue(SAMPLE, "process", "a,b", "-7", "--queue", "low", "--max-attempts", "2")
    shown = {job["id"]: job for job in cli.list()}
    assert (shown[first]["priority"], shown[first]["args"]) == (-5, ["a", "b"])
    assert (shown[second]["priority"], shown[second]["queue"], shown[second]["max_attempts"]) == (-7, "low", 2)
    assert cli.run("enqueue", SAMPLE, "process", "a,b", "--no-such-flag").returncode == 2  # still an error
    assert len(stored_ids(cli)) == 2


@pytest.mark.backends("sqlite")  # what is printed is the same on every backend
def test_rich_markup_in_the_data_prints_as_it_is(hostile_cli: Any) -> None:
    cli = hostile_cli
    job_id = cli.job_id_from(cli.run("run-job", FAIL_WITH, "-", MARKUP).stdout, r"^Job (\d+) failed")
    listed = cli.ok("jobs", "list")
    assert "[/x]" in listed.stdout, str(listed)
    shown = cli.ok("jobs", "show", str(job_id))
    assert f"RuntimeError: {MARKUP}" in shown.stdout, str(shown)  # the attempt's error, not an emoji either
    assert f'["{MARKUP}"]' in shown.stdout, str(shown)

    store = SqlStore(cli.db_url)
    try:
        now = store.now()
        store.worker_register(WorkerInfo("w-[/x]", "host", 1, ("[/x]", ":smile:"), 1, now, now))
    finally:
        store.close()
    workers = cli.ok("workers")
    assert "[/x],:smile:" in workers.stdout, str(workers)


@pytest.mark.backends("sqlite")  # what is printed is the same on every backend
def test_json_output_is_strict_json_when_a_job_returned_nan(hostile_cli: Any) -> None:
    cli = hostile_cli
    job_id = cli.job_id_from(cli.run("run-job", NAN, "-").stdout, r"^Job (\d+) completed")
    shown = strict_json(cli.ok("jobs", "show", str(job_id), "--json").stdout)
    assert shown["result"] == {"unencodable": "float: ValueError: Out of range float values are not JSON compliant"}
    # a NaN the database kept from before the child's stand-in (jobs.dumps writes it bare) prints as a string
    store = SqlStore(cli.db_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(sa.update(jobs).where(jobs.c.id == job_id).values(result="[NaN, Infinity]"))
    finally:
        store.close()
    shown = strict_json(cli.ok("jobs", "show", str(job_id), "--json").stdout)
    assert shown["result"] == ["NaN", "Infinity"]
    assert strict_json(cli.ok("jobs", "list", "--json").stdout)[0]["id"] == job_id


def _with_full_logs(cli: Any, *args: str) -> subprocess.CompletedProcess[str]:
    """Run errands with log files past the process's file size limit: the check at load (a write of nothing)
    passes, every line written later fails with EFBIG, as when the disk fills up after the command started."""
    for path in (cli.log_file, cli.error_log_file):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"-" * FULL_AT)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_AT, FULL_AT))

    done = subprocess.run(
        cli.command(*args), cwd=cli.root, env=cli.env(), capture_output=True, text=True, timeout=60, preexec_fn=limit
    )
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    return done


FULL_AT = 64 * 1024


@pytest.mark.backends("postgresql")  # the database is no file, so the size limit hits only the logs
def test_a_log_write_that_fails_never_turns_a_recorded_outcome_into_a_crash(cli: Any) -> None:
    enqueued = _with_full_logs(cli, "enqueue", SAMPLE, "process", "a,b")
    assert enqueued.returncode == 0, enqueued.stderr
    assert "cannot write the log" in enqueued.stderr
    (job,) = cli.list()
    assert job["id"] == int(enqueued.stdout)

    failed = _with_full_logs(cli, "run-job", "examples.jobs.FailingJob", "process")
    assert failed.returncode == 1, failed.stderr + failed.stdout
    assert cli.list("--status", "failed")[0]["error_message"] == "Simulated job failure"

    worked = _with_full_logs(cli, "worker", "--burst", "--concurrency", "1")
    assert worked.returncode == 0, worked.stderr
    assert cli.show(job["id"])["status"] == "completed"
