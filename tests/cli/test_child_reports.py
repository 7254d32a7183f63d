"""What a child reports once a job's body has run, through `errands run-job` and the database: the body runs once
whatever comes after it, and a sensitive job's arguments stay out of every output, its errors' too.

The project's tests_jobs.PickyJob (on the allow-list) is replaced by one whose first argument picks what it does;
every run of its body appends that argument to ran.txt, so a test counts the runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

PICKY = "tests_jobs.PickyJob"

PICKY_JOBS = '''"""Jobs only the CLI tests use: PickyJob.process's first argument picks what it does."""

from pathlib import Path

RAN = Path(__file__).resolve().parent / "ran.txt"


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class PickyJob:
    def process(self, *args):
        kind = args[0] if args else ""
        with RAN.open("a") as ran:
            ran.write(kind + "\\n")
        if kind == "tuple_keys":
            return {(1, 2): "x"}
        if kind == "unprintable":
            raise Unprintable()
        if kind == "unstorable":
            raise ValueError("a NUL \\x00 then " + "x" * 70_000)
        if kind == "leak":
            raise ValueError(f"card {args[1]} declined")
        if kind == "next_str":
            return kind
        raise ValueError("Simulated value error")

    def next_job(self, result):
        if result == "next_str":
            return ("process", "abc")  # a str as args: enqueue would refuse it
        return None
'''

pytestmark = pytest.mark.backends("sqlite")  # all of it happens in the child, before any database


@pytest.fixture
def picky(cli: Any) -> Any:
    (cli.root / "tests_jobs.py").write_text(PICKY_JOBS, encoding="utf-8")
    return cli


def runs(cli: Any) -> list[str]:
    ran: Path = cli.root / "ran.txt"
    return ran.read_text().splitlines() if ran.exists() else []


@pytest.mark.parametrize(
    ("kind", "stand_in"),  # each kind of result, in tests/unit/test_executor.py; here the whole way for one
    [("tuple_keys", "dict: TypeError: keys must be str, int, float, bool or None, not tuple")],
)
def test_a_result_that_cannot_be_stored_is_recorded_as_a_stand_in_and_the_body_runs_once(
    picky: Any, kind: str, stand_in: str
) -> None:
    result = picky.run("run-job", PICKY, "process", kind)
    assert result.returncode == 0, str(result)
    job = picky.show(picky.job_id_from(result.stdout, rf"^Job (\d+) completed: {PICKY}::process"))
    assert (job["status"], job["attempts"], job["result"]) == ("completed", 1, {"unencodable": stand_in})
    assert [a["outcome"] for a in job["attempts_history"]] == ["completed"]
    assert runs(picky) == [kind]


def test_an_exception_whose_str_raises_fails_the_attempt_once(picky: Any) -> None:
    result = picky.run("run-job", PICKY, "process", "unprintable", "--max-attempts", "1")
    assert result.returncode == 1, str(result)
    [job] = picky.list()
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["error_type"] == "tests_jobs.Unprintable"
    assert job["error_message"] == "<Unprintable: str() failed>"
    assert runs(picky) == ["unprintable"]


@pytest.mark.backends("sqlite", "postgresql", "mariadb")
def test_an_error_the_database_could_not_store_is_recorded_cut_and_escaped(picky: Any) -> None:
    """PostgreSQL refuses a NUL in TEXT, MariaDB's TEXT holds 64 KB: the attempt must be recorded all the same."""
    result = picky.run("run-job", PICKY, "process", "unstorable", "--max-attempts", "1")
    assert result.returncode == 1, str(result)
    [job] = picky.list()
    assert (job["status"], job["attempts"], job["error_type"]) == ("failed", 1, "ValueError")
    assert job["error_message"].startswith("a NUL \\x00 then xxx")
    assert job["error_message"].endswith(" characters in all]")  # cut by the store to fit its column
    assert runs(picky) == ["unstorable"]


def test_a_failing_sensitive_job_keeps_its_arguments_out_of_every_output(picky: Any) -> None:
    """The redaction test with a job that fails and quotes its arguments in its error (a message, a traceback)."""
    secret = "4242-4242-4242-4242"
    result = picky.run("run-job", PICKY, "process", f"leak,{secret}", "--sensitive", "--max-attempts", "2")
    assert result.returncode == 1, str(result)
    assert secret not in result.stdout + result.stderr
    [job] = picky.list()
    assert (job["status"], job["attempts"], job["args"]) == ("failed", 2, ["***", "***"])
    assert job["error_message"] == "card *** declined"  # the message is kept, the argument cut out
    shown = picky.show(job["id"])
    tracebacks = [attempt["traceback"] for attempt in shown["attempts_history"]]
    assert len(tracebacks) == 2 and all("ValueError: card *** declined" in tb for tb in tracebacks)
    for output in (json.dumps(job), json.dumps(shown), picky.job_log(), picky.error_log()):
        assert secret not in output
    assert "card *** declined" in picky.error_log()
    assert runs(picky) == ["leak", "leak"]  # a failure is retried as usual


def test_next_job_args_given_as_a_str_are_refused_and_the_job_completes(picky: Any) -> None:
    result = picky.run("run-job", PICKY, "process", "next_str")
    assert result.returncode == 0, str(result)
    job_id = picky.job_id_from(result.stdout, rf"^Job (\d+) completed: {PICKY}::process")
    job = picky.show(job_id)
    # no follow-up was created, with its args split into characters or otherwise
    assert (job["status"], job["result"], job["follow_ups"]) == ("completed", "next_str", [])
    refusal = f"Refused job: follow-up of job {job_id}: TypeError: next_job() args must be a list of JSON values"
    assert refusal in picky.error_log()
    assert runs(picky) == ["next_str"]
