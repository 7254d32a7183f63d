"""How the CLI shows things: Rich tables for people, stable JSON for scripts. No logic lives here.

Everything shown comes from data (a job's arguments, its error, a worker's queues): it goes to Rich as Text,
never as a markup string, so `[/x]` or `:smile:` in the data prints as it is.
"""

from __future__ import annotations

import json
import math
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from errands.access import TokenInfo, User
from errands.clock import iso
from errands.jobs import Attempt, Job, JobState, WorkerInfo
from errands.reports import QueueInfo

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

# Rich loads when something is rendered (~6 MB): a worker's process never needs it.


@cache
def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, emoji=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, emoji=False, soft_wrap=True)


def table_of(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    return Table(*columns, title=title)


def plain(value: object) -> Text:
    """Data as Rich shows it: literally, no markup, no emoji codes."""
    from rich.text import Text

    return Text(str(value))


def add_row(table: Table, *values: object) -> None:
    table.add_row(*(plain(value) for value in values))


def job_detail_json(job: Job, attempts: list[Attempt], follow_ups: list[int]) -> dict[str, Any]:
    return {**job.to_json(), "attempts_history": [a.to_json() for a in attempts], "follow_ups": follow_ups}


def print_json(value: Any) -> None:
    """Strict JSON, whatever a job returned: NaN and the infinities (which Python's json writes as bare
    NaN and Infinity, no JSON at all) are shown as the strings "NaN", "Infinity" and "-Infinity"."""
    try:
        text = json.dumps(value, indent=2, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(value), indent=2, allow_nan=False)
    print(text)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def ending_line(job: Job) -> str:
    """The one line run-job prints per job."""
    if job.status is JobState.COMPLETED:
        took = (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else 0.0
        return (
            f"Job {job.id} completed: {job.display_name} in {took:.3f}s (attempt {job.attempts} of {job.max_attempts})"
        )
    if job.status is JobState.FAILED:
        return f"Job {job.id} failed after {job.attempts} attempts: {job.error_type}: {job.error_message}"
    if job.status is JobState.CANCELLED:
        return f"Job {job.id} cancelled: {job.display_name}"
    return f"Job {job.id} is {job.status.value}: {job.display_name}"


def jobs_table(jobs: list[Job]) -> None:
    table = table_of("id", "queue", "job", "args", "priority", "status", "attempts", "scheduled", "error")
    for job in jobs:
        args, _ = job.shown_args()
        add_row(
            table,
            job.id,
            job.queue,
            job.display_name,
            json.dumps(args)[:40],
            job.priority,
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            iso(job.scheduled_at) or "",
            (job.error_message or "")[:40],
        )
    out().print(table)


def job_detail(job: Job, attempts: list[Attempt], follow_ups: list[int]) -> None:
    from rich.text import Text

    data = job.to_json()
    for key, value in [*data.items(), ("follow_ups", follow_ups)]:
        shown = json.dumps(value) if isinstance(value, list | dict) else str(value)
        out().print(Text.assemble((f"{key:>16}", "bold"), "  ", shown))
    table = table_of("#", "started", "finished", "outcome", "worker", "error", title="attempts")
    for a in attempts:
        outcome = a.outcome.value if a.outcome else "running"
        error = f"{a.error_type}: {a.error_message}" if a.error_type else ""
        add_row(table, a.number, iso(a.started_at), iso(a.finished_at) or "", outcome, a.worker or "", error)
    out().print(table)


def worker_json(w: WorkerInfo) -> dict[str, Any]:
    return {
        "id": w.id,
        "host": w.host,
        "pid": w.pid,
        "queues": list(w.queues),
        "concurrency": w.concurrency,
        "started_at": iso(w.started_at),
        "heartbeat_at": iso(w.heartbeat_at),
    }


def workers_table(workers: list[WorkerInfo]) -> None:
    table = table_of("id", "host", "pid", "queues", "concurrency", "started", "heartbeat")
    for w in workers:
        queues = ",".join(w.queues) or "*"
        add_row(table, w.id, w.host, w.pid, queues, w.concurrency, iso(w.started_at), iso(w.heartbeat_at))
    out().print(table)


# accounts: the same JSON keys as the HTTP API's (docs/api.md)


def users_table(users: list[User]) -> None:
    table = table_of("id", "name", "role", "created")
    for user in users:
        add_row(table, user.id, user.name, user.role.value, iso(user.created_at))
    out().print(table)


def tokens_table(tokens: list[TokenInfo]) -> None:
    table = table_of("id", "user", "name", "scope", "created", "expires", "last used", "revoked")
    for t in tokens:
        times = (iso(t.created_at), iso(t.expires_at) or "never", iso(t.last_used_at) or "", iso(t.revoked_at) or "")
        add_row(table, t.id, t.user, t.name, t.scope.value, *times)
    out().print(table)


def queue_json(q: QueueInfo) -> dict[str, Any]:
    return {
        "name": q.name,
        "paused": q.paused,
        "pending": q.pending,
        "due": q.due,
        "running": q.running,
        "oldest_due_at": iso(q.oldest_due_at),
        "oldest_due_age_s": q.oldest_due_age_s,
    }


def queues_table(queues: list[QueueInfo]) -> None:
    table = table_of("queue", "paused", "pending", "due", "running", "oldest due", "age (s)")
    for q in queues:
        paused = "paused" if q.paused else ""
        add_row(
            table, q.name, paused, q.pending, q.due, q.running, iso(q.oldest_due_at) or "", f"{q.oldest_due_age_s:.1f}"
        )
    out().print(table)
