"""The API contract of the observing routes (stats, queues, workers, logs, the probes): pydantic models built
from the report values of errands.reports. Times are ISO-8601 strings with a Z, as in a job's JSON."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from errands.clock import iso
from errands.jobs import WorkerInfo
from errands.reports import Count, MinuteCounts, QueueInfo, Stats


class CountOut(BaseModel):
    count: int
    exact: bool = Field(description="false: capped (at least this many) or estimated from the planner's statistics")

    @classmethod
    def of(cls, count: Count) -> CountOut:
        return cls(count=count.value, exact=count.exact)


class MinuteOut(BaseModel):
    minute: str = Field(description="the minute's start, UTC")
    completed: int
    failed: int

    @classmethod
    def of(cls, minute: MinuteCounts) -> MinuteOut:
        return cls(minute=iso(minute.minute) or "", completed=minute.completed, failed=minute.failed)


class StatsOut(BaseModel):
    by_status: dict[str, CountOut]
    by_queue: dict[str, dict[str, CountOut]] = Field(description="queue -> unfinished status -> count (exact)")
    per_minute: list[MinuteOut] = Field(description="jobs completed and failed per minute, the last hour, oldest first")
    oldest_due: dict[str, str] = Field(description="queue -> scheduled_at of its oldest due pending job")

    @classmethod
    def of(cls, stats: Stats) -> StatsOut:
        return cls(
            by_status={status: CountOut.of(count) for status, count in stats.by_status.items()},
            by_queue={
                queue: {status: CountOut.of(count) for status, count in counts.items()}
                for queue, counts in stats.by_queue.items()
            },
            per_minute=[MinuteOut.of(minute) for minute in stats.per_minute],
            oldest_due={queue: iso(moment) or "" for queue, moment in stats.oldest_due.items()},
        )


class QueueOut(BaseModel):
    name: str
    paused: bool
    pending: int = Field(description="pending jobs, due or not")
    due: int = Field(description="pending jobs due now: the autoscaling signal")
    running: int
    oldest_due_at: str | None
    oldest_due_age_s: float = Field(description="seconds the oldest due job has waited; 0 when none is due")

    @classmethod
    def of(cls, queue: QueueInfo) -> QueueOut:
        return cls(
            name=queue.name,
            paused=queue.paused,
            pending=queue.pending,
            due=queue.due,
            running=queue.running,
            oldest_due_at=iso(queue.oldest_due_at),
            oldest_due_age_s=queue.oldest_due_age_s,
        )


class QueuesOut(BaseModel):
    queues: list[QueueOut]


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    queues: list[str] = Field(description="the queues it takes; empty: every queue")
    concurrency: int
    started_at: str
    heartbeat_at: str

    @classmethod
    def of(cls, worker: WorkerInfo) -> WorkerOut:
        return cls(
            id=worker.id,
            host=worker.host,
            pid=worker.pid,
            queues=list(worker.queues),
            concurrency=worker.concurrency,
            started_at=iso(worker.started_at) or "",
            heartbeat_at=iso(worker.heartbeat_at) or "",
        )


class WorkersOut(BaseModel):
    workers: list[WorkerOut]


class LogsOut(BaseModel):
    """The last lines of each file asked for (both when none is named), oldest first, each exactly as written."""

    job: list[str] | None = None
    error: list[str] | None = None


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyOut(BaseModel):
    status: Literal["ready", "unavailable"]
    error: str | None = None
