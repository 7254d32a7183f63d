"""`errands run-job`: run a job now, with its retries and follow-ups, and exit with how it ended."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from subprocess import Popen, TimeoutExpired
from typing import Any

import pytest

SAMPLE = "examples.jobs.SampleJob"
FAILING = "examples.jobs.FailingJob"
ADD = "examples.jobs:add"
PICKY = "tests_jobs.PickyJob"


def log_lines(log: str, job_id: int) -> list[str]:
    return [line for line in log.splitlines() if f" job={job_id} " in line]


def test_run_job_completes_and_runs_the_follow_up(cli: Any) -> None:
    result = cli.run("run-job", SAMPLE, "process", "test1,test2", "4")
    assert result.returncode == 0, str(result)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, str(result)
    job_id = cli.job_id_from(lines[0], rf"^Job (\d+) completed: {SAMPLE}::process in \d+\.\d{{3}}s \(attempt 1 of 3\)$")
    follow_id = cli.job_id_from(lines[1], rf"^Job (\d+) completed: {SAMPLE}::send_email in ")

    job = cli.show(job_id)
    assert job["status"] == "completed"
    assert job["priority"] == 4
    assert job["args"] == ["test1", "test2"]
    assert job["kwargs"] == {}
    assert job["queue"] == "default"
    assert (job["attempts"], job["max_attempts"]) == (1, 3)
    assert job["parent_id"] is None
    assert job["result"] == {"processed": ["test1", "test2"]}
    assert job["error_type"] is None and job["error_message"] is None
    assert [a["outcome"] for a in job["attempts_history"]] == ["completed"]
    assert job["follow_ups"] == [follow_id]
    started, finished = cli.parse_iso(job["started_at"]), cli.parse_iso(job["finished_at"])
    assert cli.parse_iso(job["created_at"]) <= started <= finished

    [follow_up] = [j for j in cli.list() if j["id"] == follow_id]
    assert follow_up["parent_id"] == job_id
    assert follow_up["status"] == "completed"
    assert (follow_up["target"], follow_up["method"]) == (SAMPLE, "send_email")
    assert follow_up["args"] == ["test1@example.com"]
    assert follow_up["priority"] == 4  # a follow-up inherits its parent's priority and queue
    assert follow_up["result"] == "sent 'Your job is done' to test1@example.com"

    ours = log_lines(cli.job_log(), job_id)
    executing = f'Executing job: {SAMPLE}::process {{"params": ["test1", "test2"]}}'
    assert any(line.endswith(f"job={job_id} attempt=1 {executing}") for line in ours), "\n".join(ours)
    completion = re.compile(rf" job={job_id} attempt=1 Job completed: {re.escape(SAMPLE)}::process in \d+\.\d{{3}}s$")
    assert any(completion.search(line) for line in ours), "\n".join(ours)
    follow_lines = log_lines(cli.job_log(), follow_id)
    assert any('::send_email {"params": ["test1@example.com"]}' in line for line in follow_lines)
    assert cli.error_log() == ""


def test_failing_job_fails_after_three_attempts(cli: Any) -> None:
    result = cli.run("run-job", FAILING, "process", "a,b")
    assert result.returncode == 1, str(result)
    job_id = cli.job_id_from(result.stdout, r"^Job (\d+) failed after 3 attempts: RuntimeError: Simulated job failure$")
    assert len(result.stdout.strip().splitlines()) == 1, str(result)

    job = cli.show(job_id)
    assert job["status"] == "failed"
    assert (job["attempts"], job["max_attempts"]) == (3, 3)
    assert (job["error_type"], job["error_message"]) == ("RuntimeError", "Simulated job failure")
    assert job["follow_ups"] == []
    history = job["attempts_history"]
    assert [a["number"] for a in history] == [1, 2, 3]
    for attempt in history:
        assert attempt["outcome"] == "failed"
        assert attempt["error_type"] == "RuntimeError"
        assert attempt["error_message"] == "Simulated job failure"
        assert "RuntimeError: Simulated job failure" in attempt["traceback"]
        assert attempt["finished_at"].endswith("Z")

    errors = log_lines(cli.error_log(), job_id)
    assert any("Traceback (most recent call last):" in line for line in errors), "\n".join(errors)
    assert any('raise RuntimeError("Simulated job failure")' in line for line in errors)
    for n in (1, 2, 3):
        assert any(f"attempt={n} Job {job_id} attempt {n} failed: RuntimeError" in line for line in errors)
    assert any(
        line.endswith(f"job={job_id} attempt=3 Job {job_id} failed after 3 attempts: Simulated job failure")
        for line in errors
    ), "\n".join(errors)


def test_refused_targets_are_never_stored_or_run(cli: Any) -> None:
    marker = cli.root / "pwned"
    refusals = [
        (("os", "system", "echo pwned"), "Refused job: os::system"),
        (("os:system", "-", f"touch {marker}"), "Refused job: os:system"),  # well-formed, not on the list
        ((SAMPLE, "next_job", "x"), f"Refused job: {SAMPLE}::next_job"),  # an allowed class, another method
    ]
    for args, logged in refusals:
        result = cli.run("run-job", *args)
        assert result.returncode == 2, str(result)
        assert len(result.stderr_lines) == 1 and "refused" in result.stderr, str(result)
        assert "pwned" not in result.stdout
        assert logged in cli.error_log()
    assert not marker.exists()
    assert cli.list() == []
    assert " Executing job" not in cli.job_log()


def test_function_target_with_json_arguments(cli: Any) -> None:
    first = cli.run("run-job", ADD, "-", "--args-json", "[1, 2]")
    assert first.returncode == 0, str(first)
    first_id = cli.job_id_from(first.stdout, rf"^Job (\d+) completed: {ADD} in ")
    second = cli.run("run-job", ADD, "-", "--args-json", "[40]", "--kwargs-json", '{"b": 2}')
    assert second.returncode == 0, str(second)
    second_id = cli.job_id_from(second.stdout, rf"^Job (\d+) completed: {ADD} in ")

    jobs = {job["id"]: job for job in cli.list()}
    assert set(jobs) == {first_id, second_id}  # a function has no next_job: no follow-ups
    assert (jobs[first_id]["method"], jobs[first_id]["args"], jobs[first_id]["kwargs"]) == ("", [1, 2], {})
    assert jobs[first_id]["result"] == 3
    assert (jobs[second_id]["args"], jobs[second_id]["kwargs"]) == ([40], {"b": 2})
    assert jobs[second_id]["result"] == 42
    log = cli.job_log()
    assert f'job={first_id} attempt=1 Executing job: {ADD} {{"params": [1, 2]}}' in log
    assert f'job={second_id} attempt=1 Executing job: {ADD} {{"params": [40], "kwargs": {{"b": 2}}}}' in log


@pytest.mark.backends("sqlite")  # refused before anything is stored: no backend-specific path
@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("test1,test2", "--args-json", '["x", "y"]'), "not both"),
        (("--args-json", "[1, 2"), "--args-json is not JSON"),
        (("--args-json", '{"a": 1}'), "--args-json must be a JSON list"),
        (("--kwargs-json", "{nope}"), "--kwargs-json is not JSON"),
        (("--kwargs-json", "[1]"), "--kwargs-json must be a JSON object"),
        (("--max-attempts", "0"), "max_attempts"),
        (("--timeout", "0"), "timeout"),
        (("--queue", ""), "queue"),
    ],
    ids=["params-and-args-json", "bad-args-json", "args-json-object", "bad-kwargs-json", "kwargs-json-list",
         "max-attempts-0", "timeout-0", "empty-queue"],
)  # fmt: skip
def test_bad_run_job_input_exits_2(cli: Any, args: tuple[str, ...], says: str) -> None:
    result = cli.run("run-job", SAMPLE, "process", *args)
    assert result.returncode == 2, str(result)
    assert len(result.stderr_lines) == 1 and says in result.stderr, str(result)
    assert result.stdout == ""
    assert " Executing job" not in cli.job_log()


def test_max_attempts_one_fails_after_one_attempt(cli: Any) -> None:
    result = cli.run("run-job", FAILING, "process", "a", "--max-attempts", "1")
    assert result.returncode == 1, str(result)
    job_id = cli.job_id_from(result.stdout, r"^Job (\d+) failed after 1 attempts: RuntimeError: Simulated job failure$")
    assert f"Job {job_id} failed after 1 attempts: Simulated job failure" in cli.error_log()

    # a job given its own max_attempts keeps it: a manual retry grants that many again, not max_retries
    retried = cli.run("jobs", "retry", str(job_id))
    assert retried.returncode == 0, str(retried)
    assert retried.stdout.strip() == f"Job {job_id} is pending again (1 more attempts)"
    job = cli.show(job_id)
    assert (job["status"], job["attempts"], job["max_attempts"]) == ("pending", 1, 2)
    assert [a["outcome"] for a in job["attempts_history"]] == ["failed"]


def test_timeout_stops_every_attempt(cli: Any) -> None:
    began = time.monotonic()
    result = cli.run("run-job", SAMPLE, "process", "a,b", "--timeout", "0.5", env={"SAMPLE_JOB_SECONDS": "30"})
    took = time.monotonic() - began
    assert result.returncode == 1, str(result)
    assert took < 40, f"three 0.5 s attempts (and three child start-ups) took {took:.1f}s"
    job_id = cli.job_id_from(result.stdout, r"^Job (\d+) failed after 3 attempts: JobTimeout: timed out after ")
    job = cli.show(job_id)
    assert (job["status"], job["attempts"], job["error_type"]) == ("failed", 3, "JobTimeout")
    assert job["timeout"] == 0.5
    assert [a["outcome"] for a in job["attempts_history"]] == ["timed_out"] * 3
    assert all(a["error_type"] == "JobTimeout" for a in job["attempts_history"])
    assert job["follow_ups"] == []
    assert f"Job {job_id} attempt 1 timed out: JobTimeout" in cli.error_log()


SLOW_BOOT = """import sys
import time

if "errands.worker.child" in sys.orig_argv:  # only the job's child process boots slowly
    time.sleep(1.0)
"""


@pytest.mark.backends("sqlite")  # the pool's clock: no backend-specific path
def test_timeout_counts_the_job_not_the_child_start_up(cli: Any) -> None:
    """A child that takes 1 s to boot (a sitecustomize on PYTHONPATH) still runs an instant job under a
    0.5 s timeout: the clock starts when the child says it is ready, not when the job is handed over."""
    slow = cli.root / "slow_boot"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_BOOT, encoding="utf-8")
    result = cli.run("run-job", ADD, "-", "--args-json", "[1, 2]", "--timeout", "0.5", env={"PYTHONPATH": str(slow)})
    assert result.returncode == 0, str(result)
    job_id = cli.job_id_from(result.stdout, rf"^Job (\d+) completed: {ADD} in .* \(attempt 1 of 3\)$")
    assert re.search(rf" job={job_id} attempt=1 Job completed: {re.escape(ADD)} in 0\.\d{{3}}s$", cli.job_log(), re.M)


def test_exception_retries_rule_limits_attempts(cli: Any) -> None:
    cli.write_config(extra='[exception_retries]\n"ValueError" = 1\n')
    result = cli.run("run-job", PICKY, "process", "a")
    assert result.returncode == 1, str(result)
    job_id = cli.job_id_from(result.stdout, r"^Job (\d+) failed after 1 attempts: ValueError: Simulated value error$")
    job = cli.show(job_id)
    assert (job["status"], job["attempts"], job["error_type"]) == ("failed", 1, "ValueError")
    assert [a["outcome"] for a in job["attempts_history"]] == ["failed"]


@pytest.mark.backends("sqlite")
def test_max_attempts_given_for_the_job_wins_over_exception_retries(cli: Any) -> None:
    cli.write_config(extra='[exception_retries]\n"ValueError" = 1\n"RuntimeError" = 2\n')
    pinned = cli.run("run-job", PICKY, "process", "a", "--max-attempts", "3")
    assert pinned.returncode == 1, str(pinned)
    assert re.search(r"^Job \d+ failed after 3 attempts: ValueError", pinned.stdout, re.MULTILINE), str(pinned)
    ruled = cli.run("run-job", FAILING, "process")
    assert ruled.returncode == 1, str(ruled)
    assert re.search(r"^Job \d+ failed after 2 attempts: RuntimeError", ruled.stdout, re.MULTILINE), str(ruled)


def wait_until_running(cli: Any, proc: Popen[str]) -> int:
    """Poll `jobs list --json` until the run-job's job is running; its id."""

    def running() -> int | None:
        if proc.poll() is not None:
            pytest.fail(f"run-job ended early with exit {proc.returncode}: {proc.communicate()}")
        jobs: list[dict[str, Any]] = cli.list("--status", "running")
        return int(jobs[0]["id"]) if jobs else None

    job_id: int = cli.wait_until(running, 30, "the run-job's job to be running")
    return job_id


def test_cancel_a_running_run_job(cli: Any, reap: Callable[[Popen[str]], Popen[str]]) -> None:
    proc = reap(cli.popen("run-job", SAMPLE, "process", "slow,job", env={"SAMPLE_JOB_SECONDS": "300"}))
    job_id = wait_until_running(cli, proc)
    cancel = cli.run("jobs", "cancel", str(job_id))
    assert cancel.returncode == 0, str(cancel)
    assert cancel.stdout.strip() == f"Job {job_id} is running: cancel requested"

    asked = time.monotonic()
    try:
        stdout, stderr = proc.communicate(timeout=20)
    except TimeoutExpired:
        pytest.fail("run-job did not stop within 20 s of the cancel")
    took = time.monotonic() - asked
    assert proc.returncode == 5, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    assert took < 10, f"run-job took {took:.1f}s to stop after the cancel"
    assert "Traceback" not in stderr
    assert stdout.strip() == f"Job {job_id} cancelled: {SAMPLE}::process"

    job = cli.show(job_id)
    assert (job["status"], job["attempts"]) == ("cancelled", 1)
    assert [a["outcome"] for a in job["attempts_history"]] == ["cancelled"]
    assert job["follow_ups"] == []  # a cancelled job chains nothing
    assert job["finished_at"] is not None
    assert f"job={job_id} attempt=1 Job cancelled: {job_id}" in cli.job_log()
    assert [j["id"] for j in cli.list()] == [job_id]


@pytest.mark.backends("sqlite")
def test_interrupted_run_job_does_not_leave_its_job_running(cli: Any, reap: Callable[[Popen[str]], Popen[str]]) -> None:
    proc = reap(cli.popen("run-job", SAMPLE, "process", "slow,job", env={"SAMPLE_JOB_SECONDS": "300"}))
    job_id = wait_until_running(cli, proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130, f"exit {proc.returncode}\n{stdout}\n{stderr}"
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert cli.show(job_id)["status"] == "cancelled"  # recorded, and nothing runs it any more
