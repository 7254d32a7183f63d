"""`errands jobs list|show|cancel|retry`: looking at jobs and acting on them."""

from __future__ import annotations

from typing import Any

import pytest

import factories

SAMPLE = "examples.jobs.SampleJob"
FAILING = "examples.jobs.FailingJob"
ADD = "examples.jobs:add"
MISSING = "987654"

TIME_KEYS = ("scheduled_at", "created_at", "started_at", "finished_at")


def ids(jobs: list[dict[str, Any]]) -> list[int]:
    return [job["id"] for job in jobs]


def test_jobs_list_filters_and_json_contract(cli: Any) -> None:
    alpha = cli.enqueue(SAMPLE, "process", "a,b", "5", "--queue", "alpha")
    beta = cli.enqueue(SAMPLE, "process", "c,d", "--queue", "beta")
    beta_add = cli.enqueue(ADD, "-", "--args-json", "[1, 2]", "--queue", "beta")
    cancelled = cli.run("jobs", "cancel", str(alpha))
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"Job {alpha} cancelled", str(cancelled)

    everything = cli.list()
    assert ids(everything) == [beta_add, beta, alpha]
    for job in everything:
        assert isinstance(job, dict)
        assert factories.JOB_JSON_KEYS <= set(job), f"missing {factories.JOB_JSON_KEYS - set(job)}"
        assert isinstance(job["id"], int) and isinstance(job["args"], list) and isinstance(job["kwargs"], dict)
        for key in TIME_KEYS:
            if job[key] is not None:
                cli.parse_iso(job[key])
    assert everything[0]["args"] == [1, 2] and everything[0]["method"] == ""
    assert everything[2]["finished_at"].endswith("Z")  # a cancelled job has finished

    assert ids(cli.list("--status", "cancelled")) == [alpha]
    assert ids(cli.list("--status", "pending")) == [beta_add, beta]
    assert ids(cli.list("--queue", "beta")) == [beta_add, beta]


@pytest.mark.backends("sqlite")  # the table is rendering only; a bad --status is refused before any query
def test_jobs_list_table_and_bad_status(cli: Any) -> None:
    job_id = cli.enqueue(SAMPLE, "process", "a,b", "--queue", "alpha")
    table = cli.ok("jobs", "list", "--queue", "alpha")
    assert str(job_id) in table.stdout and "pending" in table.stdout and f"{SAMPLE}::process" in table.stdout

    bad = cli.run("jobs", "list", "--status", "bogus")
    assert bad.returncode == 2, str(bad)
    assert len(bad.stderr_lines) == 1 and "pending, running, completed, failed, cancelled" in bad.stderr
    assert bad.stdout == ""


def test_missing_job_exits_3(cli: Any) -> None:
    for command in ("show", "cancel", "retry"):
        result = cli.run("jobs", command, MISSING)
        assert result.returncode == 3, str(result)
        assert result.stderr_lines == [f"errands: job {MISSING} not found"], str(result)
        assert result.stdout == ""


def test_jobs_cancel_by_state(cli: Any) -> None:
    pending = cli.enqueue(SAMPLE, "process", "a,b")
    first = cli.run("jobs", "cancel", str(pending))
    assert first.returncode == 0 and first.stdout.strip() == f"Job {pending} cancelled", str(first)
    job = cli.show(pending)
    assert (job["status"], job["attempts"]) == ("cancelled", 0)
    assert job["attempts_history"] == []
    log = cli.job_log().splitlines()
    assert any(f" job={pending} " in line and line.endswith(f"Job cancelled: {pending}") for line in log)

    again = cli.run("jobs", "cancel", str(pending))
    assert again.returncode == 4, str(again)
    assert len(again.stderr_lines) == 1 and "cancelled" in again.stderr

    ran = cli.run("run-job", ADD, "-", "--args-json", "[1, 2]")
    assert ran.returncode == 0, str(ran)
    completed = cli.job_id_from(ran.stdout, r"^Job (\d+) completed: ")
    refused = cli.run("jobs", "cancel", str(completed))
    assert refused.returncode == 4, str(refused)
    assert refused.stderr_lines == [f"errands: job {completed} is completed: it cannot become cancelled"]

    # a cancelled job can be retried
    retried = cli.run("jobs", "retry", str(pending))
    assert retried.returncode == 0, str(retried)
    assert retried.stdout.strip() == f"Job {pending} is pending again (3 more attempts)"


def test_jobs_retry_a_failed_job(cli: Any) -> None:
    ran = cli.run("run-job", FAILING, "process", "x")
    assert ran.returncode == 1, str(ran)
    failed = cli.job_id_from(ran.stdout, r"^Job (\d+) failed after 3 attempts: RuntimeError: Simulated job failure$")

    retried = cli.run("jobs", "retry", str(failed))
    assert retried.returncode == 0, str(retried)
    assert retried.stdout.strip() == f"Job {failed} is pending again (3 more attempts)"  # max_retries
    job = cli.show(failed)
    assert job["status"] == "pending"
    assert job["attempts"] == 3  # unchanged: attempts keep counting
    assert job["max_attempts"] == job["attempts"] + 3
    assert job["finished_at"] is None
    assert [a["outcome"] for a in job["attempts_history"]] == ["failed"] * 3
    assert f"Job {failed} retried by hand: pending, 3 more attempts" in cli.job_log()

    again = cli.run("jobs", "retry", str(failed))
    assert again.returncode == 4, str(again)
    assert again.stderr_lines == [f"errands: job {failed} is pending: it cannot become pending"]
