"""`errands enqueue`: record a job for the workers and print its id."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

SAMPLE = "examples.jobs.SampleJob"


def utc_now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def test_enqueue_records_pending_jobs(cli: Any) -> None:
    before = utc_now()
    plain = cli.enqueue(SAMPLE, "process", "a,b", "7", "--queue", "mail")
    delayed = cli.enqueue(SAMPLE, "process", "c,d", "--delay", "60")
    at_utc = cli.enqueue(SAMPLE, "process", "e,f", "--at", "2030-01-01T00:00:00Z")
    assert plain < delayed < at_utc

    jobs = {job["id"]: job for job in cli.list()}
    assert list(jobs) == [at_utc, delayed, plain]  # the newest first
    for job in jobs.values():
        assert job["status"] == "pending"
        assert (job["attempts"], job["max_attempts"]) == (0, 3)
        assert job["started_at"] is None and job["finished_at"] is None
        assert job["parent_id"] is None
        created = cli.parse_iso(job["created_at"])
        assert abs((created - before).total_seconds()) < 300, f"created_at {created} is not about now (UTC)"

    first = jobs[plain]
    assert (first["queue"], first["priority"], first["args"]) == ("mail", 7, ["a", "b"])
    assert (first["target"], first["method"]) == (SAMPLE, "process")
    assert abs((cli.parse_iso(first["scheduled_at"]) - cli.parse_iso(first["created_at"])).total_seconds()) < 1

    later = jobs[delayed]
    assert (later["queue"], later["priority"]) == ("default", 1)  # default_priority
    wait = (cli.parse_iso(later["scheduled_at"]) - cli.parse_iso(later["created_at"])).total_seconds()
    assert 59 <= wait <= 61, f"--delay 60 scheduled it {wait}s after created_at"

    assert jobs[at_utc]["scheduled_at"] == "2030-01-01T00:00:00.000000Z"
    assert "Job queued: examples.jobs.SampleJob::process on mail priority=7" in cli.job_log()


@pytest.mark.backends("sqlite")  # refused before anything is stored: no backend-specific path
def test_enqueue_input_errors_and_at_time_zones(cli: Any) -> None:
    bad = [
        (("--delay", "5", "--at", "2030-01-01T00:00:00Z"), "not both"),
        (("--at", "tomorrow"), "--at is not an ISO-8601 time"),
        (("--at", "2030-13-01T00:00:00Z"), "--at is not an ISO-8601 time"),
        (("--delay", "-1"), "delay"),
        (("--max-attempts", "0"), "max_attempts"),
    ]
    for args, says in bad:
        result = cli.run("enqueue", SAMPLE, "process", "a,b", *args)
        assert result.returncode == 2, str(result)
        assert len(result.stderr_lines) == 1 and says in result.stderr, str(result)
        assert result.stdout == ""
    # an aware --at is converted to UTC, a naive one is taken as UTC
    offset = cli.enqueue(SAMPLE, "process", "a,b", "--at", "2030-01-01T02:00:00+02:00")
    naive = cli.enqueue(SAMPLE, "process", "a,b", "--at", "2030-01-01T00:00:00")
    refused = cli.run("enqueue", "os", "system", "echo pwned")
    assert refused.returncode == 2 and "refused" in refused.stderr, str(refused)
    assert "Refused job: os::system" in cli.error_log()
    listed = cli.list()  # only the two good ones were stored
    assert [(job["id"], job["scheduled_at"]) for job in listed] == [
        (naive, "2030-01-01T00:00:00.000000Z"),
        (offset, "2030-01-01T00:00:00.000000Z"),
    ]


def test_sensitive_arguments_are_redacted_everywhere(cli: Any) -> None:
    queued = cli.enqueue(SAMPLE, "process", "secret1,secret2", "--sensitive")
    ran = cli.run("run-job", SAMPLE, "process", "secret3,secret4", "--sensitive")
    assert ran.returncode == 0, str(ran)
    ran_id = cli.job_id_from(ran.stdout, rf"^Job (\d+) completed: {SAMPLE}::process")
    assert "secret" not in ran.stdout + ran.stderr

    listed = cli.list()
    assert len(listed) == 3  # the queued job, the one that ran, and its send_email follow-up (sensitive too)
    assert "secret" not in json.dumps(listed)
    for job in listed:
        assert job["args"] and set(job["args"]) == {"***"}, job
        assert job["sensitive"] is True
    by_id = {job["id"]: job for job in listed}
    assert by_id[ran_id]["result"] == "***"

    shown = cli.show(queued)
    assert shown["args"] == ["***", "***"]
    assert "secret" not in json.dumps(shown)

    log = cli.job_log()
    assert f'job={ran_id} attempt=1 Executing job: {SAMPLE}::process {{"params": ["***", "***"]}}' in log
    assert "secret" not in log
    assert "secret" not in cli.error_log()


@pytest.mark.backends("postgresql")
def test_postgresql_times_are_utc_whatever_the_session_time_zone(cli: Any) -> None:
    """The store's clock is the server's, in UTC: a session in another time zone (PGTZ) changes nothing."""
    before = utc_now()
    result = cli.run("enqueue", SAMPLE, "process", "a,b", env={"PGTZ": "Asia/Tokyo"})
    assert result.returncode == 0, str(result)
    created = cli.parse_iso(cli.show(int(result.stdout))["created_at"])
    assert abs((created - before).total_seconds()) < 300, f"created_at {created}Z, but it is {before}Z"
