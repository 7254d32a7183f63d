"""What operators watch: stats, queues (with pause and resume), workers and the logs' last lines.

Every route reads through the Client (errands.client), which reads the database: a replica shows what every
worker, on any machine, wrote. Pausing and resuming are audit rows (queue.pause, queue.resume).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from errands.access import Action, Identity
from errands.web.deps import AppState, app_state, requires
from errands.web.observe_models import LogsOut, QueueOut, QueuesOut, StatsOut, WorkerOut, WorkersOut
from errands.web.schemas import ErrorOut

router = APIRouter(prefix="/api", tags=["observe"])

State = Annotated[AppState, Depends(app_state)]
Reader = Annotated[Identity, Depends(requires(Action.READ))]
Operator = Annotated[Identity, Depends(requires(Action.OPERATE))]
QueueName = Annotated[str, Path(min_length=1, max_length=100, description="the queue's name")]

MAX_LOG_LINES = 1000  # the bound; the Laravel runner's dashboard showed the last 10
LOG_FILES = ("job", "error")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The refusals a route may answer (every one a JSON ErrorOut), for the OpenAPI schema."""
    return {code: {"model": ErrorOut} for code in (401, 403, 422, 429, 503, *codes)}


READ_ERRORS = _errors()


@router.get("/stats", response_model=StatsOut, responses=READ_ERRORS)
def stats(state: State, identity: Reader) -> StatsOut:
    """Jobs by status and by queue, completions and failures per minute over the last hour, the oldest due job
    per queue. Counts that are capped or estimated say so (`exact: false`)."""
    return StatsOut.of(state.client.stats())


@router.get("/queues", response_model=QueuesOut, responses=READ_ERRORS)
def queues(state: State, identity: Reader) -> QueuesOut:
    """Every queue that has jobs or was paused: depth, due jobs and the oldest due job's age."""
    return QueuesOut(queues=[QueueOut.of(queue) for queue in state.client.queues()])


@router.post("/queues/{name}/pause", response_model=QueueOut, responses=_errors(400))
def pause(name: QueueName, state: State, identity: Operator) -> QueueOut:
    """Workers stop taking the queue's jobs (running ones finish); enqueues still go in."""
    queue = state.client.pause(name, actor=identity.actor)
    state.accounts.record(identity.actor, "queue.pause", f"queue {queue.name}")
    return QueueOut.of(queue)


@router.post("/queues/{name}/resume", response_model=QueueOut, responses=_errors(400))
def resume(name: QueueName, state: State, identity: Operator) -> QueueOut:
    """Workers take the queue's jobs again."""
    queue = state.client.resume(name, actor=identity.actor)
    state.accounts.record(identity.actor, "queue.resume", f"queue {queue.name}")
    return QueueOut.of(queue)


@router.get("/workers", response_model=WorkersOut, responses=READ_ERRORS)
def workers(state: State, identity: Reader) -> WorkersOut:
    """The live workers: those whose heartbeat is within the lease timeout."""
    return WorkersOut(workers=[WorkerOut.of(worker) for worker in state.client.workers()])


@router.get("/logs", response_model=LogsOut, response_model_exclude_none=True, responses=READ_ERRORS)
def logs(
    state: State,
    identity: Reader,
    file: Annotated[Literal["job", "error"] | None, Query(description="one file; both when omitted")] = None,
    lines: Annotated[int, Query(ge=1, le=MAX_LOG_LINES, description="how many of the last lines")] = 10,
) -> LogsOut:
    """The last `lines` lines of the job log and the error log, oldest first, exactly as written by any process
    on any machine (they are kept in the database as well as in the files)."""
    wanted = (file,) if file else LOG_FILES
    tails = {name: [entry.line for entry in state.client.log_tail(name, lines)] for name in wanted}
    return LogsOut(**tails)
