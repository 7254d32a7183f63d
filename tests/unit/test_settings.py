"""Settings: ERRANDS_* > JOB_* > .env > errands.toml (or ERRANDS_CONFIG) > defaults; every problem a ConfigError."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc

from errands.errors import ConfigError
from errands.jobs import ErrorInfo, Job, JobState
from errands.retry import Backoff, exception_names
from errands.settings import Settings, load_settings
from errands.store.engine import normalize_url

SHIPPED_TOML = Path(__file__).resolve().parents[2] / "errands.toml"


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and no errands variables from the outside."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("ERRANDS_", "JOB_")) or upper in ("MAX_RETRIES", "RETRY_DELAY", "DEFAULT_PRIORITY"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def a_job(**overrides: Any) -> Job:
    moment = datetime(2026, 1, 1)
    fields: dict[str, Any] = dict(
        id=1, queue="default", target="examples.jobs.FailingJob", method="process", args=(), kwargs={},
        priority=1, status=JobState.RUNNING, attempts=1, max_attempts=3, uncharged_attempts=0, lost_attempts=0,
        attempts_pinned=False, scheduled_at=moment, created_at=moment, started_at=moment, finished_at=None,
        timeout_s=None, error_type=None, error_message=None, error_traceback=None, result=None, parent_id=None,
        then=(), sensitive=False, cancel_requested=False, lease=None,
    )  # fmt: skip
    fields.update(overrides)
    return Job(**fields)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_any_file_or_variable() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite:///errands.db"
    assert settings.max_retries == 3
    assert settings.retry_delay == 10.0
    assert settings.retry_backoff is Backoff.FIXED
    assert settings.default_priority == 1
    assert settings.allowed_jobs == {}
    assert settings.exception_retries == {}
    assert settings.log_file == Path("logs/background_jobs.log")
    assert settings.heartbeat_s == pytest.approx(settings.lease_timeout / 3)


def test_precedence_errands_over_job_over_dotenv_over_toml_over_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings().max_retries == 3
    write(tmp_path / "errands.toml", "max_retries = 4\n")
    assert load_settings().max_retries == 4
    write(tmp_path / ".env", "JOB_MAX_RETRIES=5\n")
    assert load_settings().max_retries == 5
    write(tmp_path / ".env", "ERRANDS_MAX_RETRIES=6\nJOB_MAX_RETRIES=5\n")
    assert load_settings().max_retries == 6  # within .env the ERRANDS_ name wins too
    monkeypatch.setenv("JOB_MAX_RETRIES", "7")
    assert load_settings().max_retries == 7  # a JOB_ variable beats anything in .env
    monkeypatch.setenv("ERRANDS_MAX_RETRIES", "8")
    assert load_settings().max_retries == 8
    monkeypatch.delenv("JOB_MAX_RETRIES")
    assert load_settings().max_retries == 8
    monkeypatch.delenv("ERRANDS_MAX_RETRIES")
    assert load_settings().max_retries == 6


@pytest.mark.parametrize(
    ("field", "toml", "seed_var", "value", "expected"),
    [
        ("retry_delay", "retry_delay = 1.5", "JOB_RETRY_DELAY", "2.5", 2.5),
        ("default_priority", "default_priority = 4", "JOB_DEFAULT_PRIORITY", "9", 9),
    ],
)
def test_seed_job_variables_for_each_aliased_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    toml: str,
    seed_var: str,
    value: str,
    expected: float,
) -> None:
    write(tmp_path / "errands.toml", toml + "\n")
    assert getattr(load_settings(), field) != expected
    monkeypatch.setenv(seed_var, value)
    assert getattr(load_settings(), field) == expected
    monkeypatch.setenv(f"ERRANDS_{field.upper()}", "3")
    assert getattr(load_settings(), field) == 3


def test_precedence_for_a_key_without_a_seed_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "errands.toml", 'database_url = "sqlite:///toml.db"\n')
    assert load_settings().database_url == "sqlite:///toml.db"
    write(tmp_path / ".env", "ERRANDS_DATABASE_URL=sqlite:///dotenv.db\n")
    assert load_settings().database_url == "sqlite:///dotenv.db"
    monkeypatch.setenv("ERRANDS_DATABASE_URL", "sqlite:///env.db")
    assert load_settings().database_url == "sqlite:///env.db"


def test_keyword_overrides_win_over_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "errands.toml", "max_retries = 4\n")
    monkeypatch.setenv("ERRANDS_MAX_RETRIES", "8")
    assert load_settings(max_retries=2).max_retries == 2


def test_bare_names_of_the_application_are_not_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a .env shared with the application, and its environment: only ERRANDS_ and JOB_ names configure errands
    write(tmp_path / ".env", "MAX_RETRIES=9\nDEFAULT_PRIORITY=9\nRETRY_DELAY=9\nDATABASE_URL=postgresql://app\n")
    monkeypatch.setenv("MAX_RETRIES", "8")
    monkeypatch.setenv("DEFAULT_PRIORITY", "8")
    monkeypatch.setenv("RETRY_DELAY", "8")
    settings = load_settings()
    assert settings.max_retries == 3
    assert settings.default_priority == 1
    assert settings.retry_delay == 10.0
    assert settings.database_url == "sqlite:///errands.db"


def test_dotenv_with_unrelated_keys_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / ".env", "APP_KEY=base64:abc\nDB_PASSWORD=secret\nERRANDS_DEFAULT_PRIORITY=5\n")
    settings = load_settings()
    assert settings.default_priority == 5
    assert "APP_KEY" not in settings.model_dump() and "app_key" not in settings.model_dump()


def test_a_table_from_a_higher_source_replaces_the_lower_one_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "errands.toml", '[allowed_jobs]\n"a.B" = ["m"]\n')
    monkeypatch.setenv("ERRANDS_ALLOWED_JOBS", '{"pkg.mod.Job": ["run"], "pkg.mod:f": []}')
    monkeypatch.setenv("ERRANDS_EXCEPTION_RETRIES", '{"ValueError": 2}')
    settings = load_settings()
    # the variable replaces the table; it doesn't add to errands.toml's allow-list
    assert settings.allowed_jobs == {"pkg.mod.Job": ["run"], "pkg.mod:f": []}
    assert settings.exception_retries == {"ValueError": 2}
    # so does a table in .env, below the variables and above errands.toml
    monkeypatch.delenv("ERRANDS_ALLOWED_JOBS")
    write(tmp_path / ".env", 'ERRANDS_ALLOWED_JOBS={"c.D": ["e"]}\n')
    assert load_settings().allowed_jobs == {"c.D": ["e"]}
    # and a keyword given to Settings, above everything
    assert Settings(allowed_jobs={"only.This": ["one"]}).allowed_jobs == {"only.This": ["one"]}


def test_errands_config_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "errands.toml", "max_retries = 2\n")
    other = tmp_path / "conf" / "prod.toml"
    other.parent.mkdir()
    write(other, 'max_retries = 7\nretry_backoff = "exponential"\n')
    monkeypatch.setenv("ERRANDS_CONFIG", str(other))
    settings = load_settings()
    assert settings.max_retries == 7
    assert settings.retry_backoff is Backoff.EXPONENTIAL


def test_missing_errands_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "errands.toml", "max_retries = 2\n")  # no falling back to it
    monkeypatch.setenv("ERRANDS_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "ERRANDS_CONFIG"
    assert "nope.toml" in str(caught.value)


def test_invalid_toml(tmp_path: Path) -> None:
    write(tmp_path / "errands.toml", "max_retries = = 3\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "errands.toml"
    assert "not valid TOML" in caught.value.problem


def test_unknown_key_in_toml(tmp_path: Path) -> None:
    write(tmp_path / "errands.toml", "max_retries = 3\nmax_retry = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "max_retry"
    assert "unknown key" in caught.value.problem


def test_seed_variable_names_are_no_toml_keys(tmp_path: Path) -> None:
    write(tmp_path / "errands.toml", "JOB_MAX_RETRIES = 5\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "JOB_MAX_RETRIES"


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("max_retries = 0", "max_retries"),
        ('max_retries = "x"', "max_retries"),
        ("retry_delay = -1", "retry_delay"),
        ('default_priority = "high"', "default_priority"),
        ('retry_backoff = "linear"', "retry_backoff"),
        ("poll_interval = 0", "poll_interval"),
        ("timeout = 0", "timeout"),
        ('dispatch = "thread"', "dispatch"),
        ("[exception_retries]\nValueError = 0", "exception_retries"),
        ('[allowed_jobs]\n"pkg.mod.Job" = "process"', "allowed_jobs.pkg.mod.Job"),
    ],
)
def test_bad_value_in_toml_names_the_key(tmp_path: Path, toml: str, key: str) -> None:
    write(tmp_path / "errands.toml", toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == key
    assert str(caught.value).startswith(f"config {key}: ")


@pytest.mark.parametrize("variable", ["ERRANDS_MAX_RETRIES", "JOB_MAX_RETRIES"])
def test_bad_value_in_a_variable_names_the_key(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "x")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "max_retries"


def test_retry_policy_carries_the_settings(tmp_path: Path) -> None:
    write(
        tmp_path / "errands.toml",
        'retry_delay = 2\nretry_backoff = "exponential"\nretry_max_delay = 60\nretry_jitter = false\n'
        '[exception_retries]\n"ValueError" = 1\n"sqlalchemy.exc.OperationalError" = 5\n',
    )
    policy = load_settings().retry_policy()
    assert policy.delay_s == 2.0
    assert policy.backoff is Backoff.EXPONENTIAL
    assert policy.max_delay_s == 60.0
    assert policy.jitter is False
    assert dict(policy.exception_attempts) == {"ValueError": 1, "sqlalchemy.exc.OperationalError": 5}


def test_settings_built_directly_take_keyword_values(tmp_path: Path) -> None:
    settings = Settings(allowed_jobs={"a.B": ["m"]}, log_file=tmp_path / "x.log", max_retries=5)
    assert settings.allowed_jobs == {"a.B": ["m"]}
    assert settings.log_file == tmp_path / "x.log"
    assert settings.max_retries == 5


def test_the_shipped_errands_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRANDS_CONFIG", str(SHIPPED_TOML))
    settings = load_settings()
    assert settings.allowed_jobs == {
        "examples.jobs.SampleJob": ["process", "send_email"],
        "examples.jobs.FailingJob": ["process"],
        "examples.jobs:add": [],
    }
    assert settings.exception_retries == {"sqlalchemy.exc.OperationalError": 5, "ValueError": 1}
    assert settings.max_retries == 3
    assert settings.retry_delay == 10.0
    assert settings.default_priority == 1
    assert settings.log_file == Path("logs/background_jobs.log")
    assert settings.error_log_file == Path("logs/background_jobs_errors.log")

    policy = settings.retry_policy()
    operational = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("gone"))
    assert not set(exception_names(RuntimeError())) & set(settings.exception_retries)

    def allowed(exc: BaseException) -> int:
        names = exception_names(exc)
        return policy.attempts_allowed(a_job(max_attempts=3), ErrorInfo(names[0], "", None, names))

    assert allowed(operational) == 5
    assert allowed(ValueError()) == 1
    assert allowed(RuntimeError("Simulated job failure")) == 3


# hostile values (issue 10): what passes here must never fail later, in the worker or after a job is stored -------


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("ERRANDS_RETRY_DELAY", "1e12", "retry_delay"),  # now + 1e12 s is past year 9999
        ("ERRANDS_RETRY_DELAY", "inf", "retry_delay"),
        ("JOB_RETRY_DELAY", "nan", "retry_delay"),
        ("ERRANDS_RETRY_MAX_DELAY", "inf", "retry_max_delay"),
        ("ERRANDS_TIMEOUT", "1e12", "timeout"),
        ("ERRANDS_LEASE_TIMEOUT", "inf", "lease_timeout"),
        ("ERRANDS_HEARTBEAT_INTERVAL", "1e300", "heartbeat_interval"),
        ("ERRANDS_RESCUE_INTERVAL", "nan", "rescue_interval"),
        ("ERRANDS_POLL_INTERVAL", "nan", "poll_interval"),
        ("ERRANDS_GRACE", "inf", "grace"),
        ("ERRANDS_MAX_RETRIES", str(2**31), "max_retries"),  # a retry adds to a 32-bit column
        ("ERRANDS_CRASH_BUDGET", str(2**31), "crash_budget"),
        ("ERRANDS_DEFAULT_PRIORITY", str(2**31), "default_priority"),
        ("ERRANDS_EXCEPTION_RETRIES", '{"ValueError": 2147483648}', "exception_retries"),
    ],
)
def test_every_number_is_bounded_at_load(monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == key


def test_the_bounds_themselves_load(monkeypatch: pytest.MonkeyPatch) -> None:
    year = 365 * 86400
    for name in ("RETRY_DELAY", "RETRY_MAX_DELAY", "TIMEOUT", "LEASE_TIMEOUT", "RESCUE_INTERVAL", "GRACE"):
        monkeypatch.setenv(f"ERRANDS_{name}", str(year))
    monkeypatch.setenv("ERRANDS_MAX_RETRIES", "1000000")
    monkeypatch.setenv("ERRANDS_DEFAULT_PRIORITY", str(-(2**31)))
    settings = load_settings()
    assert (settings.retry_delay, settings.lease_timeout, settings.grace) == (year, year, year)
    assert (settings.max_retries, settings.default_priority) == (1_000_000, -(2**31))


@pytest.mark.parametrize("key", ["log_file", "error_log_file"])
def test_a_log_path_that_cannot_be_written_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    a_file = write(tmp_path / "plain.txt", "")
    for bad, problem in [
        ("/dev/full", "No space left"),  # opens, but refuses every write
        (str(tmp_path), "is a directory"),
        (str(a_file / "jobs.log"), "not a writable directory"),  # under a file
    ]:
        monkeypatch.setenv(f"ERRANDS_{key.upper()}", bad)
        with pytest.raises(ConfigError) as caught:
            load_settings()
        assert caught.value.key == key and problem in caught.value.problem, caught.value
    monkeypatch.setenv(f"ERRANDS_{key.upper()}", str(tmp_path / "new" / "dirs" / "jobs.log"))
    assert getattr(load_settings(), key) == tmp_path / "new" / "dirs" / "jobs.log"
    assert not (tmp_path / "new").exists()  # checked, not created: `jobs list` writes no log


@pytest.mark.parametrize(
    "url",
    ["sqlite://", "sqlite:///", "sqlite:///:memory:", "sqlite:///file::memory:?uri=true", "sqlite:///x?mode=memory"],
)
def test_an_in_memory_sqlite_database_is_refused(url: str) -> None:
    """Refused where a URL becomes an engine (the store's normalize_url): every process opens its store so."""
    with pytest.raises(ConfigError) as caught:
        normalize_url(url)
    assert caught.value.key == "database_url"
    assert "in-memory" in caught.value.problem


@pytest.mark.parametrize("name", ["errands.toml", ".env"])
def test_a_config_file_that_is_not_utf8_names_the_file(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"# caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == name
    assert "not UTF-8" in caught.value.problem


@pytest.mark.parametrize("variable", ["ERRANDS_ALLOWED_JOBS", "ERRANDS_EXCEPTION_RETRIES"])
def test_a_table_variable_that_is_not_json_names_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "not json")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == variable.removeprefix("ERRANDS_").lower()
    write(tmp_path / ".env", f"{variable}={{oops\n")  # from .env too
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError):
        load_settings()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('"os system" = []', "not a target"),
        ('"x:y:z" = []', "not a target"),
        ('"nodots" = ["run"]', "not a target"),
        ('"pkg.mod:_private" = []', "not a target"),
        ('"pkg.mod:f" = ["run"]', "function target"),
        ('"pkg.mod.Job" = ["not a name"]', "not a public method"),
        ('"pkg.mod.Job" = ["_private"]', "not a public method"),
    ],
)
def test_a_malformed_allow_list_entry_is_refused_at_load(tmp_path: Path, table: str, problem: str) -> None:
    write(tmp_path / "errands.toml", f"[allowed_jobs]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "allowed_jobs"
    assert problem in caught.value.problem


@pytest.mark.timeout(30)  # the check once blocked forever, opening the FIFO for a reader that never came
def test_a_log_path_that_is_a_fifo_without_a_reader_is_refused_not_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "jobs.fifo"
    os.mkfifo(fifo)
    monkeypatch.setenv("ERRANDS_LOG_FILE", str(fifo))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.key == "log_file"
