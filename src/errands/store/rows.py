"""Rows to core values, core values to rows."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row

from errands.jobs import Attempt, AttemptOutcome, FollowUp, Job, JobState, Lease, NewJob, dumps


def job_from_row(row: Row[Any]) -> Job:
    m = row._mapping
    lease = None
    if m["lease_token"] is not None:
        lease = Lease(m["lease_owner"], m["lease_token"], m["lease_expires_at"])
    return Job(
        id=int(m["id"]),
        queue=m["queue"],
        target=m["target"],
        method=m["method"],
        args=tuple(json.loads(m["args"])),
        kwargs={} if m["kwargs"] == "{}" else json.loads(m["kwargs"]),  # (the common case, without a parse)
        priority=m["priority"],
        status=JobState(m["status"]),
        attempts=m["attempts"],
        max_attempts=m["max_attempts"],
        uncharged_attempts=m["uncharged_attempts"],
        lost_attempts=m["lost_attempts"],
        attempts_pinned=bool(m["attempts_pinned"]),
        scheduled_at=m["scheduled_at"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        timeout_s=m["timeout_s"],
        error_type=m["error_type"],
        error_message=m["error_message"],
        error_traceback=m["error_traceback"],
        result=None if m["result"] is None else json.loads(m["result"]),
        parent_id=None if m["parent_id"] is None else int(m["parent_id"]),
        then=() if m["then"] == "[]" else tuple(FollowUp.from_json(raw) for raw in json.loads(m["then"])),
        sensitive=bool(m["sensitive"]),
        cancel_requested=bool(m["cancel_requested"]),
        lease=lease,
    )


def attempt_from_row(row: Row[Any]) -> Attempt:
    m = row._mapping
    return Attempt(
        job_id=int(m["job_id"]),
        number=m["number"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        outcome=None if m["outcome"] is None else AttemptOutcome(m["outcome"]),
        error_type=m["error_type"],
        error_message=m["error_message"],
        error_traceback=m["error_traceback"],
        worker=m["worker"],
    )


def job_values(new: NewJob, now: datetime, reserve: Lease | None) -> dict[str, Any]:
    scheduled_at = new.scheduled_at or (now + timedelta(seconds=new.delay_s) if new.delay_s else now)
    return {
        "queue": new.queue,
        "target": new.target,
        "method": new.method,
        "args": dumps(list(new.args)),
        "kwargs": dumps(new.kwargs) if new.kwargs else "{}",
        "priority": new.priority,
        "status": JobState.PENDING.value,
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "uncharged_attempts": 0,
        "lost_attempts": 0,
        "attempts_pinned": new.attempts_pinned,
        "scheduled_at": scheduled_at,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "timeout_s": new.timeout_s,
        "error_type": None,
        "error_message": None,
        "error_traceback": None,
        "result": None,
        "parent_id": new.parent_id,
        "then": dumps([step.to_json() for step in new.then]) if new.then else "[]",
        "sensitive": new.sensitive,
        "cancel_requested": False,
        "lease_owner": reserve.owner if reserve else None,
        "lease_token": reserve.token if reserve else None,
        "lease_expires_at": reserve.expires_at if reserve else None,
        "changed_at": now,
    }
