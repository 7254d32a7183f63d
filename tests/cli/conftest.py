"""The `errands` command through real subprocesses, against the real databases of tests/conftest.py.

Each test gets a project directory of its own: a copy of examples/ (the job package), a tiny job module of
its own (tests_jobs.py), and an errands.toml the test writes (allow-list, log files inside tmp_path). Commands
run as `python -m errands ...` with that directory as cwd and ERRANDS_DATABASE_URL pointing at the test's
database; no ERRANDS_* or JOB_* variable leaks in from the caller's environment.

Every command's stderr is checked for "Traceback": a traceback is never an acceptable output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLI_TIMEOUT_S = 60.0

SAMPLE = "examples.jobs.SampleJob"
FAILING = "examples.jobs.FailingJob"
ADD = "examples.jobs:add"
PICKY = "tests_jobs.PickyJob"

ALLOWED_JOBS: dict[str, list[str]] = {
    SAMPLE: ["process", "send_email"],
    FAILING: ["process"],
    ADD: [],
    PICKY: ["process"],
}

TESTS_JOBS = '''"""Jobs only the CLI tests use."""


class PickyJob:
    def process(self, *args):
        raise ValueError("Simulated value error")
'''

T = TypeVar("T")


@dataclass(frozen=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()

    def __str__(self) -> str:
        return (
            f"errands {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def toml_value(value: Any) -> str:
    """A TOML scalar or array: JSON's spelling of these is valid TOML."""
    return json.dumps(value)


def parse_iso(value: str) -> datetime:
    """A time of the JSON contract: ISO-8601 UTC ending in Z (returned naive, like errands stores it)."""
    assert isinstance(value, str) and value.endswith("Z"), f"not an ISO-8601 UTC time ending in Z: {value!r}"
    return datetime.fromisoformat(value[:-1])


def wait_until(predicate: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.1) -> T:
    """Poll until `predicate` returns something truthy; fail the test with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def job_id_from(stdout: str, pattern: str) -> int:
    """The id in the first stdout line that matches `pattern` (which has a (\\d+) group)."""
    match = re.search(pattern, stdout, re.MULTILINE)
    assert match, f"no line matching {pattern!r} in:\n{stdout}"
    return int(match.group(1))


class Cli:
    """One project directory and one database; runs `python -m errands` there."""

    # the helpers, for test modules (which don't import conftest)
    parse_iso = staticmethod(parse_iso)
    wait_until = staticmethod(wait_until)
    job_id_from = staticmethod(job_id_from)

    def __init__(self, root: Path, logs: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.log_file = logs / "jobs.log"
        self.error_log_file = logs / "errors.log"

    # configuration --------------------------------------------------------------------------------------

    def write_config(self, extra: str = "", **settings: Any) -> None:
        """errands.toml: the allow-list and log files, top-level `settings`, then `extra` TOML tables."""
        top = {"max_retries": 3, "log_file": str(self.log_file), "error_log_file": str(self.error_log_file)}
        top.update(settings)
        lines = [f"{key} = {toml_value(value)}" for key, value in top.items()]
        lines += ["", "[allowed_jobs]"]
        lines += [f"{toml_value(target)} = {toml_value(methods)}" for target, methods in ALLOWED_JOBS.items()]
        (self.root / "errands.toml").write_text("\n".join(lines) + "\n\n" + extra, encoding="utf-8")

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("ERRANDS_", "JOB_"))}
        env.update(
            {
                "ERRANDS_DATABASE_URL": self.db_url,
                "SAMPLE_JOB_SECONDS": "0.05",
                "JOB_RETRY_DELAY": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra or {})
        return env

    # running --------------------------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "errands", *args]

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT_S) -> Result:
        done = subprocess.run(
            self.command(*args),
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in result.stderr, str(result)
        return result

    def ok(self, *args: str, env: Mapping[str, str] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.returncode == 0, str(result)
        return result

    def popen(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=self.env(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # reading --------------------------------------------------------------------------------------------

    def enqueue(self, *args: str) -> int:
        out = self.ok("enqueue", *args).stdout.strip()
        assert re.fullmatch(r"\d+", out), f"enqueue printed {out!r}, not a job id"
        return int(out)

    def show(self, job_id: int) -> dict[str, Any]:
        shown: dict[str, Any] = self.ok("jobs", "show", str(job_id), "--json").json()
        return shown

    def list(self, *args: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.ok("jobs", "list", "--json", *args).json()
        return listed

    def job_log(self) -> str:
        return self.log_file.read_text(encoding="utf-8") if self.log_file.exists() else ""

    def error_log(self) -> str:
        return self.error_log_file.read_text(encoding="utf-8") if self.error_log_file.exists() else ""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "tests_jobs.py").write_text(TESTS_JOBS, encoding="utf-8")
    return root


@pytest.fixture
def make_cli(project: Path, tmp_path: Path) -> Callable[[str], Cli]:
    """A Cli on the project for any database URL (a fresh unmigrated one, one that doesn't answer...)."""

    def make(db_url: str) -> Cli:
        cli = Cli(project, tmp_path / "logs", db_url)
        cli.write_config()
        return cli

    return make


@pytest.fixture
def cli(make_cli: Callable[[str], Cli], db_url: str) -> Cli:
    """The project on the test's own migrated database (parametrized over the backends)."""
    return make_cli(db_url)


@pytest.fixture
def run_cli(cli: Cli) -> Callable[..., Result]:
    """`run_cli(*args, env=...)`: run `python -m errands *args` in the project; returns a Result."""
    return cli.run


@pytest.fixture
def reap() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Register a Popen so it is killed and waited for however the test ends."""
    started: list[subprocess.Popen[str]] = []

    def register(proc: subprocess.Popen[str]) -> subprocess.Popen[str]:
        started.append(proc)
        return proc

    yield register
    for proc in started:
        if proc.poll() is None:
            # Ctrl-C first: run-job then stops its child (its own process group) before it exits
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.communicate()
