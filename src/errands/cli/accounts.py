"""`errands users ...` and `errands tokens ...`, and the audit rows of the CLI's actions.

The CLI acts as `cli:<OS user name>` in the audit trail. Secrets never reach argv: a password comes from a
hidden prompt (asked twice) or, with --password-stdin, one line of stdin; a new token is printed once, alone on
stdout, so `TOKEN=$(errands tokens create ...)` captures it and nothing else.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from errands.access import Role, Scope
from errands.accounts import Accounts
from errands.cli import render
from errands.cli.exits import command
from errands.clock import iso
from errands.errors import ErrandsError, InvalidInput
from errands.settings import Settings, load_settings

users_app = typer.Typer(help="Users of the HTTP API and the dashboard.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens (Authorization: Bearer).", no_args_is_help=True)

UserName = Annotated[str, typer.Argument(help="1 to 100 of A-Z a-z 0-9 _ . @ - (case-insensitive)")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="read the password from one line of stdin (no prompt)")
]
AsJson = Annotated[bool, typer.Option("--json", help="the stable JSON form (docs/cli.md)")]


def cli_actor() -> str:
    """How the audit trail names the CLI's user: cli:<OS user name>."""
    try:
        return f"cli:{getpass.getuser()}"[:255]  # the audit's actor column
    except (KeyError, OSError):  # no name for this uid (a container's), nor LOGNAME/USER set
        uid = getattr(os, "getuid", None)
        return f"cli:uid {uid()}" if uid else "cli:unknown"


@contextmanager
def opened(settings: Settings | None = None) -> Iterator[Accounts]:
    accounts = Accounts.open(settings or load_settings())
    try:
        yield accounts
    finally:
        accounts.close()


def audited(settings: Settings, action: str, subject: str, detail: str = "") -> None:
    """The audit row of a CLI action that has succeeded. Should it fail, a warning on stderr: the action
    happened, and an error exit would only invite a repeat (a second enqueue)."""
    try:
        with opened(settings) as accounts:
            accounts.record(cli_actor(), action, subject, detail)
    except ErrandsError as exc:
        render.err().print(f"errands: warning: no audit row for {action} of {subject}: {exc}", markup=False)


def read_password(from_stdin: bool) -> str:
    """One line of stdin without its line ending, or a hidden prompt asked twice on the terminal."""
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise InvalidInput("no terminal to ask for the password: pipe it in with --password-stdin")
    password: str = typer.prompt("Password", hide_input=True, confirmation_prompt="Repeat it", err=True)
    return password


# users ----------------------------------------------------------------------------------------------------


@users_app.command("create")
@command
def users_create(
    name: UserName,
    role: Annotated[Role, typer.Option("--role", help="viewer reads; operator also acts on jobs; admin also manages")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a user (the password is asked for twice, or read from stdin)."""
    password = read_password(password_stdin)
    with opened() as accounts:
        user = accounts.create_user(name, role, password, actor=cli_actor())
    print(f"created user {user.name} ({user.role.value})")


@users_app.command("list")
@command
def users_list(as_json: AsJson = False) -> None:
    """Every user, by name."""
    with opened() as accounts:
        found = accounts.users()
    if as_json:
        render.print_json([user.to_json() for user in found])
    else:
        render.users_table(found)


@users_app.command("passwd")
@command
def users_passwd(name: UserName, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password: their sessions end at once (their API tokens stay)."""
    password = read_password(password_stdin)
    with opened() as accounts:
        accounts.set_password(name, password, actor=cli_actor())
    print(f"password of {name.lower()} changed: their sessions have ended")


@users_app.command("delete")
@command
def users_delete(name: UserName) -> None:
    """Delete a user: their sessions end and their API tokens are revoked, at once."""
    with opened() as accounts:
        accounts.delete_user(name, actor=cli_actor())
    print(f"deleted user {name.lower()}: sessions ended, tokens revoked")


# tokens ---------------------------------------------------------------------------------------------------


@tokens_app.command("create")
@command
def tokens_create(
    user: Annotated[str, typer.Argument(help="the user the token acts as")],
    scope: Annotated[Scope, typer.Option("--scope", help="read, or operate (also cancel, retry, enqueue, pause)")],
    expires: Annotated[float | None, typer.Option("--expires", help="days until it expires (default: never)")] = None,
    name: Annotated[str, typer.Option("--name", help="a label, to tell tokens apart")] = "",
) -> None:
    """Create an API token for USER and print it, once: stdout holds the token alone (the rest goes to stderr)."""
    with opened() as accounts:
        info, token = accounts.create_token(user, scope, expires_days=expires, name=name, actor=cli_actor())
    print(token)
    until = iso(info.expires_at) or "never"
    render.err().print(
        f"token {info.id} for {info.user} (scope {info.scope.value}, expires {until}): it is shown only this once",
        markup=False,
    )


@tokens_app.command("list")
@command
def tokens_list(as_json: AsJson = False) -> None:
    """Every token, newest first, revoked ones too (never the tokens themselves: only their hashes are kept)."""
    with opened() as accounts:
        found = accounts.tokens()
    if as_json:
        render.print_json([token.to_json() for token in found])
    else:
        render.tokens_table(found)


@tokens_app.command("revoke")
@command
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="the token's id (tokens list)")]) -> None:
    """Revoke a token: refused from its next request on."""
    with opened() as accounts:
        accounts.revoke_token(token_id, actor=cli_actor())
    print(f"token {token_id} revoked")
