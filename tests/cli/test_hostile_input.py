"""Hostile input through the real `errands` command (issue 10): every bad input is one line and its documented
exit code (2 bad input, 3 not found, 6 configuration), never exit 70, and nothing is stored when it fails."""

from __future__ import annotations

import json
import resource
import subprocess
from typing import Any

import pytest

from errands.store import SqlStore
from errands.store.base import WorkerInfo

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


@pytest.mark.backends("sqlite")  # the settings are checked before any database is opened
@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("ERRANDS_RETRY_DELAY", "1e12", "retry_delay"),
        ("ERRANDS_RETRY_DELAY", "inf", "retry_delay"),
        ("ERRANDS_LEASE_TIMEOUT", "inf", "lease_timeout"),
        ("ERRANDS_LOG_FILE", "/dev/full", "log_file"),
        ("ERRANDS_ERROR_LOG_FILE", "/dev/full", "error_log_file"),
        ("ERRANDS_LOG_FILE", "{root}", "log_file"),
        ("ERRANDS_ALLOWED_JOBS", "not json", "allowed_jobs"),
        ("ERRANDS_ALLOWED_JOBS", '{"os system": []}', "allowed_jobs"),
        ("ERRANDS_DATABASE_URL", "sqlite://", "database_url"),
        ("ERRANDS_DATABASE_URL", "sqlite:///:memory:", "database_url"),
    ],
)
def test_settings_that_would_fail_later_exit_6_before_anything_is_stored(
    cli: Any, variable: str, value: str, key: str
) -> None:
    env = {variable: value.format(root=cli.root)}
    for args in (("enqueue", SAMPLE, "process", "a,b"), ("run-job", SAMPLE, "process", "a,b")):
        assert_refused(cli.run(*args, env=env), 6, f"config {key}: ")
    assert cli.list() == []  # no job stored, none left running


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("name", ["errands.toml", ".env"])
def test_a_config_file_that_is_not_utf8_exits_6_naming_it(cli: Any, name: str) -> None:
    path = cli.root / name
    path.write_bytes((path.read_bytes() if path.exists() else b"") + b"# caf\xe9\n")
    assert_refused(cli.run("jobs", "list"), 6, f"config {name}: not UTF-8")


def test_bad_input_exits_2_or_3_on_every_backend(cli: Any) -> None:
    refused = [
        (("enqueue", SAMPLE, "process", "--at", "0001-01-01T00:00:00+05:00"), 2),
        (("enqueue", SAMPLE, "process", "--at", "9999-12-31T23:59:59-05:00"), 2),
        (("enqueue", SAMPLE, "process", "--args-json", f"[{'9' * 5000}]"), 2),
        (("enqueue", SAMPLE, "process", "--args-json", "[" * 5000 + "]" * 5000), 2),
        (("enqueue", SAMPLE, "process", "--args-json", "[" * 101 + "]" * 101), 2),
        (("enqueue", SAMPLE, "process", "--args-json", f"[{2**63}]"), 2),
        (("enqueue", "examples.jobs." + "J" * 250, "process", "a,b"), 2),  # 264 characters
        (("enqueue", SAMPLE, "p" * 101, "a,b"), 2),
        (("prune", "--older-than", "inf"), 2),
        (("prune", "--older-than", "1e300"), 2),
        (("prune", "--older-than", "nan"), 2),
        (("jobs", "show", str(2**63)), 3),
        (("jobs", "cancel", str(2**63)), 3),
        (("jobs", "retry", str(2**63)), 3),
    ]
    for args, code in refused:
        result = cli.run(*args)
        assert result.returncode == code, str(result)
        assert "internal error" not in result.stderr, str(result)
    assert cli.list() == []


def test_a_negative_priority_needs_no_double_dash(cli: Any) -> None:
    first = cli.enqueue(SAMPLE, "process", "a,b", "-5")
    second = cli.enqueue(SAMPLE, "process", "a,b", "-7", "--queue", "low", "--max-attempts", "2")
    shown = {job["id"]: job for job in cli.list()}
    assert (shown[first]["priority"], shown[first]["args"]) == (-5, ["a", "b"])
    assert (shown[second]["priority"], shown[second]["queue"], shown[second]["max_attempts"]) == (-7, "low", 2)
    assert cli.run("enqueue", SAMPLE, "process", "a,b", "--no-such-flag").returncode == 2  # still an error


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


def test_json_output_is_strict_json_when_a_job_returned_nan(hostile_cli: Any) -> None:
    cli = hostile_cli
    job_id = cli.job_id_from(cli.run("run-job", NAN, "-").stdout, r"^Job (\d+) completed")
    shown = strict_json(cli.ok("jobs", "show", str(job_id), "--json").stdout)
    assert shown["result"] == "NaN"
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
