"""`errands users ...` and `errands tokens ...` as real subprocesses, and the audit rows of the CLI's actions."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from errands.accounts import Accounts
from errands.settings import Settings

SAMPLE = "examples.jobs.SampleJob"
PASSWORD = "pass word with spaces  "  # trailing spaces are part of it; only the newline goes
AS_TESTER = {"LOGNAME": "tester", "USER": "tester"}  # getpass.getuser() reads LOGNAME first


def run_with_input(cli: Any, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cli.command(*args),
        cwd=cli.root,
        env=cli.env(AS_TESTER),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def accounts(cli: Any, tmp_path: Path) -> Iterator[Accounts]:
    """The same database, in process: to check what the commands did."""
    opened = Accounts.open(
        Settings(database_url=cli.db_url, log_file=tmp_path / "j.log", error_log_file=tmp_path / "e.log")
    )
    yield opened
    opened.close()


def test_users_create_reads_one_line_of_stdin(cli: Any, accounts: Accounts) -> None:
    created = run_with_input(
        cli, PASSWORD + "\nnot read\n", "users", "create", "Alice", "--role", "operator", "--password-stdin"
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "created user alice (operator)"
    _, identity = accounts.login("alice", PASSWORD, address="cli-test")
    assert identity.user.role.value == "operator"
    listed = cli.ok("users", "list", "--json").json()
    assert [(u["name"], u["role"]) for u in listed] == [("alice", "operator")]
    assert set(listed[0]) == {"id", "name", "role", "created_at"}
    [entry] = accounts.audit()
    assert (entry.actor, entry.action, entry.subject) == ("cli:tester", "user.create", "user alice")

    again = run_with_input(cli, PASSWORD + "\n", "users", "create", "alice", "--role", "viewer", "--password-stdin")
    assert again.returncode == 2 and "user alice exists already" in again.stderr
    windows = run_with_input(cli, "crlf password\r\n", "users", "create", "bob", "--role", "viewer", "--password-stdin")
    assert windows.returncode == 0, windows.stderr
    accounts.login("bob", "crlf password", address="cli-test")


@pytest.mark.backends("sqlite")
def test_users_create_refuses_bad_input(cli: Any) -> None:
    short = run_with_input(cli, "short\n", "users", "create", "bob", "--role", "viewer", "--password-stdin")
    assert short.returncode == 2 and "a password is 8 to 1024 characters, got 5" in short.stderr
    empty = run_with_input(cli, "", "users", "create", "bob", "--role", "viewer", "--password-stdin")
    assert empty.returncode == 2 and "got 0" in empty.stderr
    no_tty = run_with_input(cli, PASSWORD + "\n", "users", "create", "bob", "--role", "viewer")
    assert no_tty.returncode == 2 and "--password-stdin" in no_tty.stderr
    bad_name = run_with_input(
        cli, PASSWORD + "\n", "users", "create", "bob smith", "--role", "viewer", "--password-stdin"
    )
    assert bad_name.returncode == 2 and "a user name is 1 to 100" in bad_name.stderr
    bad_role = run_with_input(cli, PASSWORD + "\n", "users", "create", "bob", "--role", "root", "--password-stdin")
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr
    assert cli.ok("users", "list", "--json").json() == []


@pytest.mark.backends("sqlite")
def test_users_create_asks_twice_on_a_terminal_without_echo(cli: Any, accounts: Accounts) -> None:
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        cli.command("users", "create", "carol", "--role", "viewer"),
        cwd=cli.root,
        env=cli.env(AS_TESTER),
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        start_new_session=True,  # no controlling terminal: getpass must not open the test runner's /dev/tty
    )
    os.close(terminal)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 30
        while marker not in seen:
            assert time.monotonic() < deadline, f"no {marker!r} in {seen!r}"
            if select.select([controller], [], [], 0.5)[0]:
                try:
                    seen += os.read(controller, 1024)
                except OSError:  # the child closed the terminal
                    break

    try:
        # getpass prints its " " once echo is off (and flushes what was typed before): type after it
        read_until(b"Password: ")
        os.write(controller, b"terminal secret\n")
        read_until(b"Repeat it: ")
        os.write(controller, b"terminal secret\n")
        read_until(b"created user carol")
        assert proc.wait(timeout=30) == 0, seen
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(controller)
    assert b"terminal secret" not in seen  # not echoed
    accounts.login("carol", "terminal secret", address="cli-test")


def test_tokens_create_prints_the_token_alone(cli: Any, accounts: Accounts) -> None:
    run_with_input(cli, PASSWORD + "\n", "users", "create", "alice", "--role", "operator", "--password-stdin")
    created = cli.run(
        "tokens", "create", "alice", "--scope", "operate", "--expires", "30", "--name", "deploy bot", env=AS_TESTER
    )
    assert created.returncode == 0, str(created)
    token = created.stdout.removesuffix("\n")
    assert "\n" not in token and token.startswith("errands_") and len(token) == 51, repr(created.stdout)
    assert "shown only this once" in created.stderr and token not in created.stderr
    identity = accounts.token(token)
    assert identity is not None and identity.user.name == "alice" and identity.scope is not None
    assert identity.scope.value == "operate"

    [listed] = cli.ok("tokens", "list", "--json").json()
    assert (listed["user"], listed["name"], listed["scope"], listed["revoked_at"]) == (
        "alice",
        "deploy bot",
        "operate",
        None,
    )
    assert listed["expires_at"].endswith("Z") and token not in cli.ok("tokens", "list").stdout
    revoked = cli.run("tokens", "revoke", str(listed["id"]), env=AS_TESTER)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"token {listed['id']} revoked"
    assert accounts.token(token) is None  # at once
    assert cli.ok("tokens", "list", "--json").json()[0]["revoked_at"] is not None
    actions = [(e.actor, e.action) for e in reversed(accounts.audit())]
    assert actions[-2:] == [("cli:tester", "token.create"), ("cli:tester", "token.revoke")]


@pytest.mark.backends("sqlite")
def test_tokens_create_refusals_and_exit_codes(cli: Any) -> None:
    run_with_input(cli, PASSWORD + "\n", "users", "create", "vic", "--role", "viewer", "--password-stdin")
    nobody = cli.run("tokens", "create", "nobody", "--scope", "read")
    assert nobody.returncode == 3 and nobody.stdout == "" and "user nobody not found" in nobody.stderr
    beyond = cli.run("tokens", "create", "vic", "--scope", "operate")
    assert beyond.returncode == 2 and beyond.stdout == "" and "vic is a viewer" in beyond.stderr
    for days in ("0", "-1", "nan", "4000"):
        expiring = cli.run("tokens", "create", "vic", "--scope", "read", "--expires", days)
        assert expiring.returncode == 2 and expiring.stdout == "", str(expiring)
    bad_scope = cli.run("tokens", "create", "vic", "--scope", "admin")
    assert bad_scope.returncode == 2 and bad_scope.stdout == ""
    assert cli.run("tokens", "revoke", "4242").returncode == 3
    assert cli.run("tokens", "revoke", "99999999999999999999999").returncode == 3
    assert cli.run("tokens", "revoke", "one").returncode == 2
    assert cli.ok("tokens", "list", "--json").json() == []


@pytest.mark.backends("sqlite")
def test_passwd_and_delete_end_sessions(cli: Any, accounts: Accounts) -> None:
    run_with_input(cli, PASSWORD + "\n", "users", "create", "alice", "--role", "admin", "--password-stdin")
    cookie, _ = accounts.login("alice", PASSWORD, address="cli-test")
    changed = run_with_input(cli, "a brand new one\n", "users", "passwd", "alice", "--password-stdin")
    assert changed.returncode == 0, changed.stderr
    assert accounts.session(cookie) is None
    cookie, _ = accounts.login("alice", "a brand new one", address="cli-test")
    missing = run_with_input(cli, "a brand new one\n", "users", "passwd", "ghost", "--password-stdin")
    assert missing.returncode == 3 and "user ghost not found" in missing.stderr
    assert cli.run("users", "delete", "alice", env=AS_TESTER).returncode == 0
    assert accounts.session(cookie) is None
    assert cli.run("users", "delete", "alice").returncode == 3
    assert [e.action for e in reversed(accounts.audit())] == ["user.create", "user.passwd", "user.delete"]


def test_cli_actions_on_jobs_are_audited(cli: Any, accounts: Accounts) -> None:
    job_id = int(cli.run("enqueue", SAMPLE, "process", "a,b", env=AS_TESTER).stdout)
    assert cli.run("jobs", "cancel", str(job_id), env=AS_TESTER).returncode == 0
    assert cli.run("jobs", "retry", str(job_id), env=AS_TESTER).returncode == 0
    assert cli.run("jobs", "retry", str(job_id), env=AS_TESTER).returncode == 4  # pending: refused, no row
    assert cli.run("enqueue", "os.system", "x", env=AS_TESTER).returncode == 2  # refused: no row
    trail = [(e.actor, e.action, e.subject, e.detail) for e in reversed(accounts.audit())]
    assert trail == [
        ("cli:tester", "job.enqueue", f"job {job_id}", f"{SAMPLE}::process"),
        ("cli:tester", "job.cancel", f"job {job_id}", "cancelled"),
        ("cli:tester", "job.retry", f"job {job_id}", ""),
    ]


@pytest.mark.backends("sqlite")
def test_run_job_is_the_applications_runner_not_an_audited_action(cli: Any, accounts: Accounts) -> None:
    assert cli.run("run-job", SAMPLE, "process", "a,b", env=AS_TESTER).returncode == 0
    assert accounts.audit() == []


@pytest.mark.backends("sqlite")
def test_pausing_and_resuming_a_queue_from_the_cli_are_audited(cli: Any, accounts: Accounts) -> None:
    assert cli.run("queues", "pause", "mail", env=AS_TESTER).returncode == 0
    assert cli.run("queues", "resume", "mail", env=AS_TESTER).returncode == 0
    trail = [(e.actor, e.action, e.subject) for e in reversed(accounts.audit())]
    assert trail == [("cli:tester", "queue.pause", "queue mail"), ("cli:tester", "queue.resume", "queue mail")]
