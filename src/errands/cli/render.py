"""How the CLI shows things: Rich tables for people, stable JSON for scripts. No logic lives here."""

from __future__ import annotations

import json
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

from errands.clock import iso
from errands.jobs import Attempt, Job, JobState, WorkerInfo

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# Rich loads when something is rendered (~6 MB): a worker's process never needs it.


@cache
def out() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


@cache
def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def table_of(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    return Table(*columns, title=title)


def job_detail_json(job: Job, attempts: list[Attempt], follow_ups: list[int]) -> dict[str, Any]:
    return {**job.to_json(), "attempts_history": [a.to_json() for a in attempts], "follow_ups": follow_ups}


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


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
        table.add_row(
            str(job.id),
            job.queue,
            job.display_name,
            json.dumps(args)[:40],
            str(job.priority),
            job.status.value,
            f"{job.attempts}/{job.max_attempts}",
            iso(job.scheduled_at) or "",
            (job.error_message or "")[:40],
        )
    out().print(table)


def job_detail(job: Job, attempts: list[Attempt], follow_ups: list[int]) -> None:
    data = job.to_json()
    for key, value in data.items():
        out().print(f"[bold]{key:>16}[/bold]  {json.dumps(value) if isinstance(value, list | dict) else value}")
    out().print(f"[bold]{'follow_ups':>16}[/bold]  {follow_ups}")
    table = table_of("#", "started", "finished", "outcome", "worker", "error", title="attempts")
    for a in attempts:
        outcome = a.outcome.value if a.outcome else "running"
        error = f"{a.error_type}: {a.error_message}" if a.error_type else ""
        table.add_row(str(a.number), iso(a.started_at), iso(a.finished_at) or "", outcome, a.worker or "", error)
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
        table.add_row(w.id, w.host, str(w.pid), queues, str(w.concurrency), iso(w.started_at), iso(w.heartbeat_at))
    out().print(table)
