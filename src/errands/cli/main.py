"""The `errands` command. Exit codes, the same for every command:

0 ok · 1 the job failed or timed out · 2 bad input or a refused target · 3 not found ·
4 the job's state forbids it · 5 cancelled · 6 configuration or database error · 130 interrupted
"""

from __future__ import annotations

import json
import math
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from errands.cli import accounts as accounts_cli
from errands.cli import render
from errands.cli.exits import Exit, command
from errands.client import Client, JobRequest, connect, migrate_database, queue_name, run_worker
from errands.errors import InvalidInput
from errands.jobs import JobState
from errands.settings import MAX_DURATION_S, load_settings

app = typer.Typer(
    name="errands",
    help="Background jobs on a real database.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
jobs_app = typer.Typer(help="Look at and act on jobs.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(accounts_cli.users_app, name="users")
app.add_typer(accounts_cli.tokens_app, name="tokens")
queues_app = typer.Typer(help="The queues: list them, pause and resume them (workers skip a paused queue).")
app.add_typer(queues_app, name="queues")


@contextmanager
def connected() -> Iterator[Client]:
    client = connect(load_settings())
    try:
        yield client
    finally:
        client.close()


# run-job and enqueue share their arguments ------------------------------------------------------------

MAX_AGE_S = 100 * 365 * 86400.0  # prune --older-than: a century back is still a time every database holds
_NUMBER = re.compile(r"-\d+(\.\d*)?\Z")


class _SignedNumbers(TyperCommand):
    """`enqueue T m a,b -5`: a negative number where an argument goes is that argument (the Laravel runner took
    it so), not an unknown option. The arguments go after a `--`, behind the options and their values."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        takes_value = {
            name
            for param in self.get_params(ctx)
            if param.param_type_name == "option" and not getattr(param, "is_flag", False)
            for name in (*param.opts, *param.secondary_opts)
        }
        return super().parse_args(ctx, _arguments_last(args, takes_value))


def _arguments_last(args: list[str], takes_value: set[str]) -> list[str]:
    options: list[str] = []
    arguments: list[str] = []
    tokens = iter(args)
    for token in tokens:
        if token == "--":
            arguments.extend(tokens)
        elif token == "-" or not token.startswith("-") or _NUMBER.match(token):
            arguments.append(token)
        else:
            options.append(token)
            value = next(tokens, None) if token in takes_value else None
            if value is not None:
                options.append(value)
    if not any(_NUMBER.match(token) for token in arguments):
        return args  # nothing to reorder: click parses exactly what was typed
    return [*options, "--", *arguments]


def _bounded_seconds(limit: float) -> Callable[[float | None], float | None]:
    """A float option's check: click's FloatRange lets NaN through (every comparison with it is false)."""

    def check(value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and 0 <= value <= limit):
            raise typer.BadParameter(f"must be a number of seconds from 0 to {limit:.0f}, got {value}")
        return value

    return check


def _queue_names(value: list[str] | None) -> list[str] | None:
    try:
        return [queue_name(name) for name in value] if value else value
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None


Target = Annotated[str, typer.Argument(help="pkg.mod.Class, or pkg.mod:function")]
Method = Annotated[str, typer.Argument(help='the method to call ("-" for a function target)')]
Params = Annotated[str, typer.Argument(help='comma-separated string arguments: "a,b"')]
Priority = Annotated[int | None, typer.Argument(help="higher runs first (default: default_priority)")]
ArgsJson = Annotated[str | None, typer.Option("--args-json", help="arguments as a JSON list (typed values)")]
KwargsJson = Annotated[str | None, typer.Option("--kwargs-json", help="keyword arguments as a JSON object")]
Queue = Annotated[str, typer.Option("--queue", "-q")]
MaxAttempts = Annotated[int | None, typer.Option("--max-attempts", help="attempts in all for this job")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="seconds before the attempt is killed")]
Sensitive = Annotated[bool, typer.Option("--sensitive", help="redact the arguments in every output")]


def job_request(
    target: str,
    method: str,
    params: str,
    priority: int | None,
    args_json: str | None,
    kwargs_json: str | None,
    **options: Any,
) -> JobRequest:
    if args_json is not None and params:
        raise InvalidInput("give PARAMS or --args-json, not both")
    args = _json_arg("--args-json", args_json, list) if args_json is not None else _split_params(params)
    kwargs = _json_arg("--kwargs-json", kwargs_json, dict) if kwargs_json is not None else {}
    return JobRequest(target, method, args=args, kwargs=kwargs, priority=priority, **options)


def _split_params(params: str) -> list[str]:
    """The Laravel runner's form: "test1,test2" is two string arguments; "" is none."""
    return params.split(",") if params else []


def _json_arg(flag: str, raw: str, kind: type) -> Any:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{flag} is not JSON: {exc}") from None
    except ValueError:  # an integer of more than 4,300 digits, which Python refuses to convert
        raise InvalidInput(f"{flag}: integers are 64-bit (-2**63 to 2**63-1)") from None
    except RecursionError:
        raise InvalidInput(f"{flag} nests too deep (at most 100 levels)") from None
    if not isinstance(value, kind):
        raise InvalidInput(f"{flag} must be a JSON {'list' if kind is list else 'object'}")
    return value


@app.command("run-job", cls=_SignedNumbers)
@command
def run_job(
    target: Target,
    method: Method,
    params: Params = "",
    priority: Priority = None,
    args_json: ArgsJson = None,
    kwargs_json: KwargsJson = None,
    queue: Queue = "default",
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
    sensitive: Sensitive = False,
    background: Annotated[bool, typer.Option("--background", help="run in a detached process")] = False,
) -> None:
    """Run a job now (retries and follow-ups included), record it, and print how it ended."""
    options = {"queue": queue, "max_attempts": max_attempts, "timeout": timeout, "sensitive": sensitive}
    with connected() as client:
        request = job_request(target, method, params, priority, args_json, kwargs_json, **options)
        if background:
            job_id = client.run_in_background(request)
            print(f"Job {job_id} started in the background")
            return
        finished = client.run_now(request)
    for job in finished:
        print(render.ending_line(job))
    raise typer.Exit(int(_exit_for_chain([job.status for job in finished])))


def _exit_for_chain(statuses: list[JobState]) -> Exit:
    if JobState.FAILED in statuses:
        return Exit.JOB_FAILED
    if JobState.CANCELLED in statuses:
        return Exit.CANCELLED
    return Exit.OK


@app.command(cls=_SignedNumbers)
@command
def enqueue(
    target: Target,
    method: Method,
    params: Params = "",
    priority: Priority = None,
    args_json: ArgsJson = None,
    kwargs_json: KwargsJson = None,
    queue: Queue = "default",
    max_attempts: MaxAttempts = None,
    timeout: Timeout = None,
    sensitive: Sensitive = False,
    delay: Annotated[float, typer.Option("--delay", help="seconds from now")] = 0,
    at: Annotated[str | None, typer.Option("--at", help="an ISO-8601 time (UTC unless it says)")] = None,
) -> None:
    """Record a job for the workers and print its id."""
    if at is not None and delay:
        raise InvalidInput("give --delay or --at, not both")
    options = {"queue": queue, "max_attempts": max_attempts, "timeout": timeout, "sensitive": sensitive}
    with connected() as client:
        request = job_request(
            target, method, params, priority, args_json, kwargs_json, delay=delay, at=_parse_at(at), **options
        )
        job_id = client.enqueue(request)
        print(job_id)
    shown = f"{request.target}::{request.method}" if request.method else request.target
    accounts_cli.audited(client.settings, "job.enqueue", f"job {job_id}", shown)


def _parse_at(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    except ValueError:
        raise InvalidInput(f"--at is not an ISO-8601 time: {raw!r}") from None
    except OverflowError:  # 0001-01-01T00:00:00+05:00 is before year 1 in UTC
        raise InvalidInput(f"--at is out of range: {raw!r}") from None


@app.command()
@command
def migrate() -> None:
    """Create or upgrade the database schema."""
    print(f"database at {migrate_database(load_settings())} is up to date")


# jobs ---------------------------------------------------------------------------------------------------

JobId = Annotated[int, typer.Argument(help="the job's id")]
AsJson = Annotated[bool, typer.Option("--json", help="the stable JSON form (docs/cli.md)")]


@jobs_app.command("list")
@command
def jobs_list(
    status: Annotated[
        str | None, typer.Option("--status", help="pending, running, completed, failed, cancelled")
    ] = None,
    queue: Annotated[str | None, typer.Option("--queue", "-q")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10000)] = 100,
    as_json: AsJson = False,
) -> None:
    """The newest jobs first."""
    state = _state(status)
    with connected() as client:
        found = client.jobs(status=state, queue=queue, limit=limit)
    if as_json:
        render.print_json([job.to_json() for job in found])
    else:
        render.jobs_table(found)


def _state(raw: str | None) -> JobState | None:
    if raw is None:
        return None
    try:
        return JobState(raw)
    except ValueError:
        raise InvalidInput(f"--status must be one of {', '.join(s.value for s in JobState)}") from None


@jobs_app.command("show")
@command
def jobs_show(job_id: JobId, as_json: AsJson = False) -> None:
    """One job with its attempts and follow-ups."""
    with connected() as client:
        job, attempts, follow_ups = client.get(job_id), client.attempts(job_id), client.follow_ups(job_id)
    if as_json:
        render.print_json(render.job_detail_json(job, attempts, follow_ups))
    else:
        render.job_detail(job, attempts, follow_ups)


@jobs_app.command("cancel")
@command
def jobs_cancel(job_id: JobId) -> None:
    """Cancel a pending job now, or stop a running one (its worker kills it within a second)."""
    with connected() as client:
        job = client.cancel(job_id)
    accounts_cli.audited(client.settings, "job.cancel", f"job {job.id}", job.status.value)
    if job.status is JobState.CANCELLED:
        print(f"Job {job.id} cancelled")
    else:
        print(f"Job {job.id} is running: cancel requested")


@jobs_app.command("retry")
@command
def jobs_retry(job_id: JobId) -> None:
    """Send a failed or cancelled job back to pending with a fresh retry budget."""
    with connected() as client:
        job = client.retry(job_id)
    accounts_cli.audited(client.settings, "job.retry", f"job {job.id}")
    print(f"Job {job.id} is pending again ({job.budget} more attempts)")


# the worker ---------------------------------------------------------------------------------------------


@app.command("worker")
@command
def worker_command(
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", callback=_queue_names, help="a queue to take jobs from (repeat); all when none"),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="child processes running jobs")
    ] = 2,
    burst: Annotated[bool, typer.Option("--burst", help="exit 0 once nothing is due")] = False,
    max_jobs_per_child: Annotated[int | None, typer.Option("--max-jobs-per-child", min=1)] = None,
    grace: Annotated[
        float | None,
        typer.Option("--grace", callback=_bounded_seconds(MAX_DURATION_S), help="seconds running jobs get at shutdown"),
    ] = None,
    prefetch: Annotated[
        int | None, typer.Option("--prefetch", min=0, max=10_000, help="jobs claimed ahead of free children")
    ] = None,
) -> None:
    """Process the queue: claim due jobs in priority order and run them in supervised child processes."""
    overrides: dict[str, Any] = {}
    if max_jobs_per_child is not None:
        overrides["max_jobs_per_child"] = max_jobs_per_child
    settings = load_settings(**overrides)
    code = run_worker(
        settings, queues=queue or (), concurrency=concurrency, burst=burst, prefetch=prefetch, grace=grace
    )
    raise typer.Exit(code)


app.command("process", help="An alias of `worker` (the Laravel runner's jobs:process).")(worker_command)


@app.command("workers")
@command
def workers_command(as_json: AsJson = False) -> None:
    """The live workers: those whose heartbeat is recent."""
    with connected() as client:
        live = client.workers()
    if as_json:
        render.print_json([render.worker_json(w) for w in live])
    else:
        render.workers_table(live)


@app.command("serve")
@command
def serve_command(
    host: Annotated[str, typer.Option("--host", help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="server processes")] = 1,
) -> None:
    """Serve the HTTP API (docs/api.md) on uvicorn: every process makes the app from the same settings."""
    import uvicorn  # only this command needs the server

    with connected():  # a database not migrated (or unreachable) is one line and exit 6, before any server starts
        pass
    # uvicorn stops gracefully on SIGTERM, then raises the signal again under the handler it found: with the
    # default one the process would end "killed by SIGTERM" (143), which reads as a crash to an orchestrator.
    # Asked to stop, and stopped cleanly, is exit 0, as the worker ends.
    signal.signal(signal.SIGTERM, _stopped_on_request)
    # by import string (the faces don't import each other); uvicorn trusts X-Forwarded-Proto from
    # FORWARDED_ALLOW_IPS (default 127.0.0.1), which makes a session cookie Secure behind an https proxy
    uvicorn.run(
        SERVE_APP,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        server_header=False,
        log_level="info",
        # open event streams never end by themselves: without this, Ctrl-C waits for every dashboard to leave
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


def _stopped_on_request(signum: int, frame: object) -> None:
    raise SystemExit(0)


SERVE_APP = "errands.web.app:app_from_env"
SHUTDOWN_GRACE_S = 5  # a stopping server's requests get this long to finish; then they are cut


@app.command("prune")
@command
def prune_command(
    older_than: Annotated[
        float, typer.Option("--older-than", callback=_bounded_seconds(MAX_AGE_S), help="seconds since the job finished")
    ],
) -> None:
    """Delete finished jobs (completed, failed, cancelled), their attempts and log lines; and log lines older
    than log_retention."""
    with connected() as client:
        removed = client.prune(older_than)
    print(f"pruned {removed} finished jobs")


# queues -------------------------------------------------------------------------------------------------

QueueName = Annotated[str, typer.Argument(help="the queue's name")]


@queues_app.callback(invoke_without_command=True)
@command
def queues_list(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every queue with jobs or a pause: pending, due, running, the oldest due job's age, paused or not."""
    if ctx.invoked_subcommand is not None:
        return
    with connected() as client:
        found = client.queues()
    if as_json:
        render.print_json([render.queue_json(q) for q in found])
    else:
        render.queues_table(found)


@queues_app.command("pause")
@command
def queues_pause(name: QueueName) -> None:
    """Workers stop taking this queue's jobs (within about a second); running jobs go on."""
    with connected() as client:
        queue = client.pause(name, actor=accounts_cli.cli_actor())
        accounts_cli.audited(client.settings, "queue.pause", f"queue {queue.name}")
    print(f"Queue {queue.name} paused ({queue.pending} pending)")


@queues_app.command("resume")
@command
def queues_resume(name: QueueName) -> None:
    """Workers take this queue's jobs again."""
    with connected() as client:
        queue = client.resume(name, actor=accounts_cli.cli_actor())
        accounts_cli.audited(client.settings, "queue.resume", f"queue {queue.name}")
    print(f"Queue {queue.name} resumed ({queue.pending} pending)")


def main() -> None:
    # text from the data (a job's error, undecodable bytes of a command line) must never fail to print
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:  # a bug of ours: one line, not a traceback
        print(f"errands: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(70)
