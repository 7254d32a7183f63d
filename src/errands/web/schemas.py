"""The API's contract for jobs, accounts and the audit trail, as pydantic models (OpenAPI is made from them).

A job's JSON is `Job.to_json()`, the CLI's `--json` form (docs/cli.md); the models here describe it, they don't
re-shape it. Times are ISO-8601 UTC strings ending in Z. Request models forbid unknown fields: a typo is a 422,
not a silently ignored filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from errands.access import Role, Scope
from errands.clock import iso
from errands.jobs import Attempt, Job, JobState
from errands.reports import BulkRun, FailureGroup

INT64_MAX = 2**63 - 1
# a job's arguments and result are anyone's JSON: NaN and the infinities go out as strings, as the CLI writes them
_OUT = ConfigDict(ser_json_inf_nan="strings")
_IN = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str
    detail: Any = None


# jobs -----------------------------------------------------------------------------------------------------


class JobOut(BaseModel):
    model_config = _OUT
    id: int
    queue: str
    target: str
    method: str
    args: list[Any]
    kwargs: dict[str, Any]
    priority: int
    status: JobState
    attempts: int
    max_attempts: int
    parent_id: int | None
    scheduled_at: str | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    timeout: float | None
    error_type: str | None
    error_message: str | None
    result: Any
    sensitive: bool
    cancel_requested: bool


class AttemptOut(BaseModel):
    number: int
    started_at: str | None
    finished_at: str | None
    outcome: str | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None = None
    worker: str | None = None


class JobDetailOut(JobOut):
    """`errands jobs show --json`: the job, its attempts (`attempts` is their count) and its follow-ups' ids."""

    attempts_history: list[AttemptOut]
    follow_ups: list[int]


class JobPageOut(BaseModel):
    model_config = _OUT
    jobs: list[JobOut]
    next: int | None = Field(description="pass as `before` for the next (older) page; null: no more")
    count: int = Field(description="jobs matching the filter (all pages)")
    count_exact: bool = Field(description="false: `count` is a cap (at least that many) or an estimate")


class JobFilter(BaseModel):
    """Which jobs: the query parameters of GET /api/jobs, and the `filter` of a bulk action."""

    model_config = _IN
    status: list[JobState] = Field(default_factory=list, description="any of these (repeat, or comma-separated)")
    queue: str | None = Field(None, max_length=100)
    target: str | None = Field(None, max_length=255, description="exactly this target")
    q: str | None = Field(None, max_length=1000, description="text in the target or the error message")
    args: Any = Field(
        default=None,
        description="a JSON value: an object is contained in the job's kwargs, anything else in its args "
        "(in the query string: JSON text, e.g. args=%7B%22customer_id%22%3A42%7D)",
    )
    created_after: datetime | None = None
    created_before: datetime | None = None


class EnqueueIn(BaseModel):
    model_config = _IN
    target: str = Field(max_length=255, description="pkg.mod.Class or pkg.mod:function, in allowed_jobs")
    method: str = Field("", max_length=100, description='the method; "" for a function')
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    priority: int | None = Field(
        None, ge=-(2**31), le=2**31 - 1, description="higher runs first (default: default_priority)"
    )
    queue: str = Field("default", min_length=1, max_length=100)
    delay: float = Field(0, ge=0, le=100 * 365 * 86400, description="seconds from now")


class EnqueuedOut(BaseModel):
    model_config = _OUT
    id: int
    job: JobOut


class BulkIn(BaseModel):
    model_config = _IN
    action: Literal["cancel", "retry"]
    filter: JobFilter = Field(default_factory=lambda: JobFilter.model_validate({}))
    dry_run: bool = Field(False, description="only count the jobs it would act on")


class CountOut(BaseModel):
    count: int
    count_exact: bool


class BulkRunOut(BaseModel):
    id: int
    action: str
    filter: dict[str, Any]
    status: Literal["running", "done", "failed"]
    total: int
    done: int
    skipped: int
    created_by: str
    created_at: str | None
    finished_at: str | None
    error: str | None


class BulkStartedOut(BaseModel):
    run: BulkRunOut


class FailureGroupOut(BaseModel):
    error_type: str
    target: str
    method: str
    count: int
    first_at: str | None
    last_at: str | None
    sample_job_id: int
    sample_message: str | None


class FailureGroupsOut(BaseModel):
    groups: list[FailureGroupOut]


# accounts -------------------------------------------------------------------------------------------------


class LoginIn(BaseModel):
    model_config = _IN
    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class SessionOut(BaseModel):
    """Who the session (or token) is; `csrf_token` goes in the X-CSRF-Token header of every unsafe request
    made with the session cookie (null for a token: it needs none)."""

    user: str
    role: Role
    scope: Scope | None
    csrf_token: str | None


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    created_at: str | None


class UsersOut(BaseModel):
    users: list[UserOut]


class UserIn(BaseModel):
    model_config = _IN
    name: str = Field(min_length=1, max_length=100)
    role: Role
    password: str = Field(min_length=8, max_length=1024)


class PasswordIn(BaseModel):
    model_config = _IN
    password: str = Field(min_length=8, max_length=1024)


class TokenOut(BaseModel):
    id: int
    user: str
    name: str
    scope: Scope
    created_at: str | None
    expires_at: str | None
    last_used_at: str | None
    revoked_at: str | None


class TokensOut(BaseModel):
    tokens: list[TokenOut]


class TokenIn(BaseModel):
    model_config = _IN
    user: str = Field(min_length=1, max_length=100)
    scope: Scope
    expires_days: float | None = Field(None, gt=0, le=36500)
    name: str = Field("", max_length=100)


class TokenCreatedOut(BaseModel):
    """`token` is shown this once: only its hash is stored."""

    token: str
    info: TokenOut


class AuditEntryOut(BaseModel):
    id: int
    at: str | None
    actor: str
    action: str
    subject: str
    detail: str


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]
    next: int | None = Field(description="pass as `before` for older entries; null: no more")


# values -> JSON ---------------------------------------------------------------------------------------------


def bulk_run_json(run: BulkRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "action": run.action,
        "filter": run.search,
        "status": run.status,
        "total": run.total,
        "done": run.done,
        "skipped": run.skipped,
        "created_by": run.created_by,
        "created_at": iso(run.created_at),
        "finished_at": iso(run.finished_at),
        "error": run.error,
    }


def failure_group_json(group: FailureGroup) -> dict[str, Any]:
    return {
        "error_type": group.error_type,
        "target": group.target,
        "method": group.method,
        "count": group.count,
        "first_at": iso(group.first_at),
        "last_at": iso(group.last_at),
        "sample_job_id": group.sample_job_id,
        "sample_message": group.sample_message,
    }


def job_detail_json(job: Job, attempts: list[Attempt], follow_ups: list[int]) -> dict[str, Any]:
    """The CLI's `jobs show --json` (cli/render.py job_detail_json: the faces don't import each other)."""
    return {**job.to_json(), "attempts_history": [a.to_json() for a in attempts], "follow_ups": follow_ups}
