"""Configuration and database problems: exit 6 and one line on stderr, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

SAMPLE = "examples.jobs.SampleJob"
UNREACHABLE = "postgresql://nobody@127.0.0.1:1/x"


def assert_one_line(result: Any, *needles: str) -> None:
    assert len(result.stderr_lines) == 1, str(result)
    assert result.stderr_lines[0].startswith("errands: "), str(result)
    for needle in needles:
        assert needle in result.stderr, str(result)


@pytest.mark.backends("sqlite")  # the configuration is read before any database is opened
def test_bad_config_exits_6_naming_the_key(cli: Any) -> None:
    cli.write_config(max_retries=0)
    for args in (("jobs", "list"), ("enqueue", SAMPLE, "process", "a,b"), ("run-job", SAMPLE, "process", "a,b")):
        result = cli.run(*args)
        assert result.returncode == 6, str(result)
        assert_one_line(result, "max_retries")
        assert result.stdout == ""

    cli.write_config(max_retrys=3)  # a typo is an unknown key, not silently ignored
    result = cli.run("jobs", "list")
    assert result.returncode == 6, str(result)
    assert_one_line(result, "max_retrys", "unknown key")

    (cli.root / "errands.toml").write_text("max_retries = = 3\n", encoding="utf-8")
    result = cli.run("jobs", "list")
    assert result.returncode == 6, str(result)
    assert_one_line(result, "not valid TOML")

    cli.write_config()
    result = cli.run("jobs", "list", env={"JOB_MAX_RETRIES": "0"})  # the Laravel runner's variable is checked too
    assert result.returncode == 6, str(result)
    assert_one_line(result, "max_retries")
    assert cli.run("jobs", "list").returncode == 0


def test_unreachable_database_exits_6(make_cli: Callable[[str], Any]) -> None:
    cli = make_cli(UNREACHABLE)
    for args in (("jobs", "list"), ("enqueue", SAMPLE, "process", "a,b"), ("run-job", SAMPLE, "process", "a,b")):
        result = cli.run(*args)
        assert result.returncode == 6, str(result)
        assert_one_line(result)
        assert result.stdout == ""
    assert " Executing job" not in cli.job_log()


def test_unreachable_database_is_not_reported_as_unmigrated(make_cli: Callable[[str], Any]) -> None:
    result = make_cli(UNREACHABLE).run("jobs", "list")
    assert result.returncode == 6, str(result)
    assert "migrate" not in result.stderr, str(result)


def test_database_password_is_never_printed(make_cli: Callable[[str], Any]) -> None:
    result = make_cli("postgresql://nobody:hunter2@127.0.0.1:1/x").run("jobs", "list")
    assert result.returncode == 6, str(result)
    assert "hunter2" not in result.stderr, str(result)


def test_migrate_on_an_unreachable_database_prints_one_line(make_cli: Callable[[str], Any]) -> None:
    result = make_cli(UNREACHABLE).run("migrate")
    assert result.returncode == 6, str(result)
    assert_one_line(result)


@pytest.mark.backends("postgresql")
def test_unmigrated_schema_asks_for_migrate_then_works(make_cli: Callable[[str], Any], fresh_db_url: str) -> None:
    cli = make_cli(fresh_db_url)
    for args in (("enqueue", SAMPLE, "process", "a,b"), ("jobs", "list")):
        result = cli.run(*args)
        assert result.returncode == 6, str(result)
        assert_one_line(result, "run `errands migrate`")

    migrated = cli.run("migrate")
    assert migrated.returncode == 0, str(migrated)
    assert "up to date" in migrated.stdout
    assert cli.run("migrate").returncode == 0  # migrating again changes nothing

    job_id = cli.enqueue(SAMPLE, "process", "a,b")
    assert [(job["id"], job["status"]) for job in cli.list()] == [(job_id, "pending")]
