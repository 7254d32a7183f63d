"""Jobs: list and filter (keyset pages), detail, enqueue, cancel, retry, bulk actions by filter, failure groups.

Routes are thin: they parse, ask the Client (errands.client, the door the CLI uses too), record the action in
the audit trail once it succeeded, and return the job's JSON (`Job.to_json()`, the CLI's --json form).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from errands.client import JobRequest
from errands.errors import InvalidInput
from errands.jobs import JobState
from errands.reports import JobSearch
from errands.search import search_from_json
from errands.web.deps import Operator, Reader, app_state
from errands.web.responses import JSONResponse
from errands.web.schemas import (
    INT64_MAX,
    BulkIn,
    BulkStartedOut,
    CountOut,
    EnqueuedOut,
    EnqueueIn,
    ErrorOut,
    FailureGroupsOut,
    JobDetailOut,
    JobFilter,
    JobOut,
    JobPageOut,
    bulk_run_json,
    failure_group_json,
    job_detail_json,
)

# Routes that answer with jobs return their JSONResponse themselves: `response_model` documents the schema but
# FastAPI's pydantic pass would turn a result's NaN into null (and costs a page of 500 jobs a few milliseconds)
router = APIRouter(prefix="/api", tags=["jobs"])

JobId = Annotated[int, Path(ge=1, le=INT64_MAX, description="the job's id")]
COUNT_CAP = 10_000  # the jobs list counts its matches up to this many (never a full COUNT on a big table)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in (401, 403, 413, 422, 429, 503, *codes)}


@router.get("/jobs", response_model=JobPageOut, responses=_errors(400))
def list_jobs(
    request: Request,
    identity: Reader,
    status: Annotated[
        list[str], Query(description="pending, running, completed, failed, cancelled: repeat or a,b")
    ] = [],  # noqa: B006
    queue: Annotated[str | None, Query(max_length=100)] = None,
    target: Annotated[str | None, Query(max_length=255)] = None,
    q: Annotated[str | None, Query(max_length=1000, description="text in the target or error message")] = None,
    args: Annotated[str | None, Query(max_length=10_000, description='JSON: {"customer_id": 42} or 42')] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    before: Annotated[int | None, Query(ge=1, le=INT64_MAX, description="the `next` of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    """The newest jobs first, filtered; `next` is the `before` of the next page."""
    client = app_state(request).client
    found = JobFilter(
        status=_states(status),
        queue=queue,
        target=target,
        q=q,
        args=_json_query("args", args),
        created_after=created_after,
        created_before=created_before,
    )
    search = job_search(found, before_id=before, limit=limit)
    page = client.search(search)
    count = client.count(job_search(found), cap=COUNT_CAP)
    body = {"jobs": [job.to_json() for job in page.jobs], "next": page.next_before_id}
    return JSONResponse({**body, "count": count.value, "count_exact": count.exact})


def _states(values: list[str]) -> list[JobState]:
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    try:
        return [JobState(name) for name in names]
    except ValueError:
        known = ", ".join(state.value for state in JobState)
        raise InvalidInput(f"status must be among {known}, got {', '.join(names)!r:.200}") from None


def _json_query(name: str, raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, an integer of 4,300 digits, or nested thousands deep
        raise InvalidInput(f"{name} must be JSON text, e.g. {name}=%7B%22customer_id%22%3A42%7D or {name}=42") from None


def job_search(found: JobFilter, *, before_id: int | None = None, limit: int = 50) -> JobSearch:
    """The API's filter as the Client's JobSearch (search_from_json validates every field)."""
    return search_from_json({**filter_json(found), "before_id": before_id, "limit": limit})


def filter_json(found: JobFilter) -> dict[str, Any]:
    return {
        "status": [state.value for state in found.status],
        "queue": found.queue,
        "target": found.target,
        "text": found.q,
        "args": found.args,
        "created_after": _naive_utc(found.created_after),
        "created_before": _naive_utc(found.created_before),
    }


def _naive_utc(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat() if moment.tzinfo else moment.isoformat()
    except OverflowError:
        raise InvalidInput(f"time out of range: {moment.isoformat()}") from None


@router.post("/jobs", status_code=201, response_model=EnqueuedOut, responses=_errors(400))
def enqueue(body: EnqueueIn, request: Request, identity: Operator) -> Response:
    """Queue a job for the workers (allow-list enforced: 400 with the reason)."""
    state = app_state(request)
    job_request = JobRequest(
        body.target,
        body.method,
        args=body.args,
        kwargs=body.kwargs,
        priority=body.priority,
        queue=body.queue,
        delay=body.delay,
    )
    job_id = state.client.enqueue(job_request)
    job = state.client.get(job_id)
    state.accounts.record(identity.actor, "job.enqueue", f"job {job_id}", job.display_name)
    return JSONResponse({"id": job_id, "job": job.to_json()}, status_code=201)


@router.get("/jobs/{job_id}", response_model=JobDetailOut, responses=_errors(404))
def job_detail(job_id: JobId, request: Request, identity: Reader) -> Response:
    """One job with its attempts and its follow-ups (`errands jobs show --json`)."""
    client = app_state(request).client
    return JSONResponse(job_detail_json(client.get(job_id), client.attempts(job_id), client.follow_ups(job_id)))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, responses=_errors(404, 409))
def cancel(job_id: JobId, request: Request, identity: Operator) -> Response:
    """Cancel a pending job now, or ask a running one's worker to stop it (`cancel_requested`)."""
    state = app_state(request)
    job = state.client.cancel(job_id)
    state.accounts.record(identity.actor, "job.cancel", f"job {job_id}", job.status.value)
    return JSONResponse(job.to_json())


@router.post("/jobs/{job_id}/retry", response_model=JobOut, responses=_errors(404, 409))
def retry(job_id: JobId, request: Request, identity: Operator) -> Response:
    """Send a failed or cancelled job back to pending with a fresh retry budget."""
    state = app_state(request)
    job = state.client.retry(job_id)
    state.accounts.record(identity.actor, "job.retry", f"job {job_id}")
    return JSONResponse(job.to_json())


@router.post(
    "/jobs/bulk",
    status_code=202,
    response_model=None,
    responses={**_errors(400), 200: {"model": CountOut}, 202: {"model": BulkStartedOut}},
)
def bulk(body: BulkIn, request: Request, identity: Operator) -> Response:
    """Cancel or retry every job the filter matches, in batches in the background (202 with the run; follow it
    at GET /api/jobs/bulk/{run_id}); `dry_run` only counts them (200)."""
    state = app_state(request)
    search = job_search(body.filter)
    if body.dry_run:
        count = state.client.count(search, cap=COUNT_CAP)
        return JSONResponse({"count": count.value, "count_exact": count.exact}, status_code=200)
    run = state.client.bulk_start(body.action, search, actor=identity.actor)
    detail = json.dumps(filter_json(body.filter), separators=(",", ":"))
    state.accounts.record(identity.actor, f"jobs.bulk_{body.action}", f"bulk run {run.id}", detail)
    return JSONResponse({"run": bulk_run_json(run)}, status_code=202)


@router.get("/jobs/bulk/{run_id}", response_model=BulkStartedOut, responses=_errors(404))
def bulk_progress(
    run_id: Annotated[int, Path(ge=1, le=INT64_MAX)], request: Request, identity: Reader
) -> dict[str, Any]:
    """A bulk run's progress: `done` and `skipped` of `total`, and its status."""
    return {"run": bulk_run_json(app_state(request).client.bulk_get(run_id))}


@router.get("/failures", response_model=FailureGroupsOut, responses=_errors())
def failures(request: Request, identity: Reader, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    """Failed jobs grouped by error type, target and method, with counts and the newest job of each group."""
    groups = app_state(request).client.failure_groups(limit)
    return {"groups": [failure_group_json(group) for group in groups]}
