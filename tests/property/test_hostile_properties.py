"""Property-based hostile input (issue 10): arbitrary text, numbers and nesting through the CLI's arguments,
the config values and the Python API's parameters, on all three databases.

Every outcome is a documented exit code (never 70, the in-process form of which is an exception other than
SystemExit) or, from the API, an ErrandsError; and the jobs table stays consistent: nothing stored when the
command failed, and every stored job readable, as asked, and printable as strict JSON.

The CLI runs in-process (typer's CliRunner) for speed; tests/cli/test_hostile_input.py has the subprocess probes.
One database per test function serves all its examples: the tests read the table before and after each.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from errands.cli.main import app
from errands.client import Client, JobRequest
from errands.errors import ErrandsError, InvalidInput, JobNotFound
from errands.settings import Settings
from errands.store import SqlStore
from errands.store.base import JobFilter

EXAMPLES = int(os.environ.get("ERRANDS_PROPERTY_EXAMPLES", "25"))
HOSTILE = hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,  # a shared machine and a database round trip: time says nothing here
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)

SAMPLE = "examples.jobs.SampleJob"
ADD = "examples.jobs:add"
LONG_TARGET = "examples.jobs." + "J" * 250  # too long for the column, allowed: the length check must refuse it
LONG_METHOD = "p" * 101
ALLOWED = {SAMPLE: ["process", "send_email"], ADD: []}
EXIT_CODES = {0, 2, 3, 4, 6}  # ok, bad input, not found, wrong state, config or database

# text that was trouble once: Rich markup, option look-alikes, numbers past every range, JSON edge cases
SPECIMENS = [
    "[/x]", "[bold]", ":smile:", "-5", "--", "-", "", " ", "\x00", "\udcff", "\u2028", "é", "9" * 30, "-" + "9" * 30,
    "inf", "-inf", "nan", "1e300", "1e12", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2030-01-01",
    "[" * 200 + "]" * 200, f"[{2**63}]", "[NaN]", "[1e400]", '{"a": [1, {"b": null}]}', "x" * 300,
]  # fmt: skip
texts = st.text(max_size=40) | st.sampled_from(SPECIMENS)
numbers = st.integers() | st.floats() | st.integers(-(2**64), 2**64)
number_texts = numbers.map(str) | texts
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
moments = st.datetimes(
    min_value=datetime(1, 1, 1),
    timezones=st.none() | st.builds(timezone, st.timedeltas(-timedelta(hours=23), timedelta(hours=23))),
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str) -> Path:
    """A working directory with errands.toml (allow-list, logs under tmp_path) and the test's database."""
    for name in list(os.environ):
        if name.upper().startswith(("ERRANDS_", "JOB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ERRANDS_DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    listed = {**ALLOWED, SAMPLE: [*ALLOWED[SAMPLE], LONG_METHOD], LONG_TARGET: ["process"]}
    allowed = "\n".join(f"{json.dumps(target)} = {json.dumps(methods)}" for target, methods in listed.items())
    (tmp_path / "errands.toml").write_text(
        f'log_file = "{tmp_path}/logs/jobs.log"\nerror_log_file = "{tmp_path}/logs/errors.log"\n\n'
        f"[allowed_jobs]\n{allowed}\n",
        encoding="utf-8",
    )
    return tmp_path


@pytest.fixture
def client(project: Path, store: SqlStore) -> Iterator[Client]:
    settings = Settings(
        allowed_jobs=ALLOWED, log_file=project / "logs" / "jobs.log", error_log_file=project / "logs" / "errors.log"
    )
    opened = Client(settings, store)
    yield opened
    opened.log.close()


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"errands {args!r} would exit 70") from result.exception
    assert result.exit_code in EXIT_CODES, (args, result.exit_code, result.output)
    return result


def job_ids(where: SqlStore | Client) -> list[int]:
    if isinstance(where, Client):
        return [job.id for job in where.jobs(limit=10_000)]
    return [job.id for job in where.jobs_list(JobFilter(limit=10_000))]


def strict_json(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def assert_readable(job_id: int) -> dict[str, Any]:
    """A stored job: `jobs show` and `jobs list` print it, as a table and as strict JSON."""
    shown: dict[str, Any] = strict_json(invoke("jobs", "show", str(job_id), "--json").stdout)
    assert shown["id"] == job_id
    assert invoke("jobs", "show", str(job_id)).exit_code == 0
    assert invoke("jobs", "list").exit_code == 0
    return shown


def expected_args(params: str | None, args_json: str | None) -> list[Any]:
    if args_json is not None:
        return list(json.loads(args_json))
    return params.split(",") if params else []


# the CLI's arguments ------------------------------------------------------------------------------------


REPORTED: list[tuple[tuple[str, ...], int]] = [  # issue 10's inputs, each once exit 70 or a database error
    (("enqueue", SAMPLE, "process", "--at", "0001-01-01T00:00:00+05:00"), 2),
    (("enqueue", SAMPLE, "process", "--at", "9999-12-31T23:59:59-05:00"), 2),
    (("enqueue", SAMPLE, "process", "--args-json", f"[{'9' * 5000}]"), 2),
    (("enqueue", SAMPLE, "process", "--args-json", "[" * 5000 + "]" * 5000), 2),
    (("enqueue", SAMPLE, "process", "--args-json", "[" * 101 + "]" * 101), 2),
    (("enqueue", SAMPLE, "process", "--args-json", f"[{2**63}]"), 2),
    (("enqueue", SAMPLE, "process", "--kwargs-json", f'{{"a": {-(2**63) - 1}}}'), 2),
    (("enqueue", LONG_TARGET, "process", "a,b"), 2),  # was stored on SQLite only
    (("enqueue", SAMPLE, LONG_METHOD, "a,b"), 2),
    (("enqueue", SAMPLE, "process", "a,b", "--queue", "\x00"), 2),
    (("jobs", "list", "--queue", "\x00"), 2),  # was a driver error on PostgreSQL
    (("worker", "--queue", "\x00"), 2),
    (("worker", "--grace", "nan"), 2),
    (("worker", "--prefetch", str(2**63)), 2),
    (("prune", "--older-than", "inf"), 2),
    (("prune", "--older-than", "1e300"), 2),
    (("prune", "--older-than", "nan"), 2),
    (("jobs", "show", str(2**63)), 3),
    (("jobs", "cancel", str(2**63)), 3),
    (("jobs", "retry", str(2**63)), 3),
    (("jobs", "show", "0"), 3),
]


def test_the_reported_inputs_exit_2_or_3(project: Path, store: SqlStore) -> None:
    for args, code in REPORTED:
        result = invoke(*args)
        assert result.exit_code == code, (args[:4], result.output)
    assert job_ids(store) == []


@HOSTILE
@given(
    target=st.sampled_from([SAMPLE, ADD, "os:system", "examples.jobs.SampleJob.x"]) | texts,
    method=st.sampled_from(["process", "-", "send_email"]) | texts,
    params=st.none() | texts,
    priority=st.none() | number_texts,
    args_json=st.none() | json_values.map(json.dumps) | texts,
    kwargs_json=st.none() | json_values.map(json.dumps) | texts,
    options=st.dictionaries(
        st.sampled_from(["--queue", "--at", "--delay", "--timeout", "--max-attempts"]),
        texts | number_texts | moments.map(datetime.isoformat),
        max_size=3,
    ),
)
def test_enqueue_takes_any_arguments(
    project: Path,
    store: SqlStore,
    target: str,
    method: str,
    params: str | None,
    priority: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    options: dict[str, str],
) -> None:
    positional = [target, method, *([params] if params is not None or priority is not None else [])]
    positional += [priority] if priority is not None else []
    flags = [part for flag, value in options.items() for part in (flag, value)]
    flags += ["--args-json", args_json] if args_json is not None else []
    flags += ["--kwargs-json", kwargs_json] if kwargs_json is not None else []
    before = job_ids(store)
    result = invoke("enqueue", *[p or "" for p in positional], *flags)
    after = job_ids(store)
    if result.exit_code != 0:
        assert after == before, result.output  # nothing half-written
        return
    (job_id,) = set(after) - set(before)
    assert result.stdout.strip() == str(job_id)
    shown = assert_readable(job_id)
    assert shown["args"] == expected_args(params, args_json)
    if "--queue" in options:
        assert shown["queue"] == options["--queue"]


@HOSTILE
@given(
    command=st.sampled_from(["show", "cancel", "retry"]),
    job_id=st.integers().map(str) | number_texts,
)
def test_job_commands_take_any_id(project: Path, store: SqlStore, command: str, job_id: str) -> None:
    if not job_ids(store):
        invoke("enqueue", SAMPLE, "process", "a,b")
    invoke("jobs", command, "--", job_id)  # `--`: an id like -5 is an id, not an option


@HOSTILE
@given(
    args=st.lists(
        st.sampled_from(["--older-than", "--limit", "--status", "--queue", "-q", "--json", "--grace", "--prefetch"])
        | number_texts,
        max_size=4,
    ),
    command=st.sampled_from([("prune",), ("jobs", "list"), ("workers",)]),
)
def test_the_other_commands_take_any_options(
    project: Path, store: SqlStore, command: tuple[str, ...], args: list[str]
) -> None:
    before = job_ids(store)
    invoke(*command, *args)
    assert job_ids(store) == before  # nothing prunes: every job here is pending


# the config values ------------------------------------------------------------------------------------------

CONFIG_KEYS = [name for name in Settings.model_fields if name not in ("database_url", "log_file", "error_log_file")]
BAD_DATABASE_URLS = [
    "sqlite://",
    "sqlite:///",
    "sqlite:///:memory:",
    "postgresql://bob:s3cretPW@[::1/x",
    "postgresql://bob:s3cretPW@127.0.0.1:notaport/x",
    "nosuchdb://x",
    "",
    "[/x]",
]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    return json.dumps(value)  # strings (JSON's escapes are TOML's) and numbers


@HOSTILE
@given(
    key=st.sampled_from(CONFIG_KEYS),
    value=texts | number_texts,
    in_toml=json_values | texts,
    toml_key=st.sampled_from(CONFIG_KEYS),
    url=st.none() | st.sampled_from(BAD_DATABASE_URLS),
    log=st.none() | texts,
)
def test_any_config_value_is_checked_before_anything_is_stored(
    project: Path, store: SqlStore, key: str, value: str, in_toml: Any, toml_key: str, url: str | None, log: str | None
) -> None:
    env = {f"ERRANDS_{key.upper()}": value}
    if url is not None:
        env["ERRANDS_DATABASE_URL"] = url
    if log is not None:  # inside the project: the text is hostile, not the place
        env["ERRANDS_LOG_FILE"] = str(project / "logs" / log.replace("/", "_").replace("\x00", "_"))
    env = {name: text for name, text in env.items() if "\x00" not in text and _encodable(text)}
    toml = project / "errands.toml"
    saved = toml.read_text(encoding="utf-8")
    toml.write_text(f"{toml_key} = {toml_value(in_toml)}\n{saved}", encoding="utf-8")
    try:
        before = job_ids(store)
        result = invoke("enqueue", SAMPLE, "process", "a,b", env=env)
        assert result.exit_code in (0, 6), result.output
        assert "s3cretPW" not in result.output
        assert len(job_ids(store)) == len(before) + (result.exit_code == 0)
    finally:
        toml.write_text(saved, encoding="utf-8")


def _encodable(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


# the Python API ---------------------------------------------------------------------------------------------


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.frozensets(st.integers(), max_size=2)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    )


anything = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=10) | st.binary(max_size=4) | moments | st.dates(),
    _containers,
    max_leaves=8,
)


def field(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, often anything at all."""
    return valid | anything


requests = st.builds(
    JobRequest,
    target=field(st.sampled_from([SAMPLE, ADD])),
    method=field(st.sampled_from(["process", "send_email", "", "-"])),
    args=field(st.lists(json_values, max_size=3)),
    kwargs=field(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3)),
    priority=field(st.none() | st.integers(-(2**31), 2**31 - 1)),
    queue=field(st.sampled_from(["default", "mail"]) | texts),
    delay=field(st.floats(min_value=0, max_value=1e6)),
    at=field(st.none() | moments),
    timeout=field(st.none() | st.floats(min_value=0.001, max_value=1e6)),
    max_attempts=field(st.none() | st.integers(1, 10)),
    then=field(st.lists(st.tuples(st.just(SAMPLE), st.just("send_email"), st.lists(json_values, max_size=2)))),
    sensitive=field(st.booleans()),
)


@HOSTILE
@given(batch=st.lists(requests | anything, min_size=1, max_size=3), job_id=st.integers())
def test_the_python_api_takes_any_parameters(client: Client, batch: list[Any], job_id: int) -> None:
    for request in batch[:1]:
        before = job_ids(client)
        try:
            stored_id = client.enqueue(request)
        except InvalidInput:
            assert job_ids(client) == before
        else:
            job = client.get(stored_id)
            assert job.args == tuple(json.loads(json.dumps(list(request.args))))
            assert job.queue == request.queue
    before = job_ids(client)
    try:
        ids = client.enqueue_many(batch)
    except InvalidInput:
        assert job_ids(client) == before  # all or nothing
    else:
        assert sorted(job_ids(client)) == sorted([*before, *ids])
    try:
        assert client.get(job_id).id == job_id
    except JobNotFound:
        pass
    except ErrandsError as exc:
        raise AssertionError(f"get({job_id}) raised {exc!r}") from exc
