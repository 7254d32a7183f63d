"""The messages between a supervising parent and a child that runs jobs: one JSON object per line.

parent -> child   {"allowed_jobs": {...}}                                 once, first
child  -> parent  {"ready": true}                                         once it can run jobs
parent -> child   {"jobs": [{"id": 7, "target": "...", "method": "...", "args": [...], "kwargs": {...}}, ...],
                   "until": 81234.5 | null}               start none of them after this time.monotonic()
                  a job of a sensitive=True job also has "sensitive": true
child  -> parent  {"id": 7, "ok": true, "result": ..., "next": ["target", "method", [args]] | null, "s": 0.001}
                  with "next_refused": "why" when next_job() raised or returned what enqueue would refuse
child  -> parent  ok 7 0.000012                          the same when result and next are null (most jobs)
child  -> parent  {"id": 7, "ok": false, "refused": bool, "error": {"type", "message", "traceback", "mro"}, "s": ...}
parent -> child   {"revoke": [8, 9]}                      take back those not started yet
child  -> parent  {"revoked": [9]}                        the ones it took back (8 had started)
child  -> parent  {"revoked": [10, 11]}                   unasked: their "until" passed before they started

The child runs the jobs of its batches in order and writes each reply as its job ends ("s": the call's
duration in seconds); a closed stdin ends it once its jobs are done. The child never touches the database:
it runs what it is sent and reports back. "until" is the moment the parent's leases on the batch may lapse
(the monotonic clock is the machine's, shared by both processes): a child that gets to a job later gives it
back unstarted, and the parent, with news of renewals meanwhile, sends it again or releases it.

A job's body runs once, so whatever happens after it returns is reported, never a reason to run it again: a
result the child can't encode travels as a stand-in ({"unencodable": "<type>: <reason>"}), a refused follow-up
as "next_refused", an exception whose str() raises with a stand-in message. A sensitive job's arguments are cut
out of its error's message and traceback in the child (worker/redact.py), before anything leaves it.
"""

from __future__ import annotations

from typing import Any

from errands.jobs import ErrorInfo, FollowUp


def error_to_json(error: ErrorInfo) -> dict[str, Any]:
    return {
        "type": error.type,
        "message": error.message,
        "traceback": error.traceback,
        "mro": list(error.mro),
    }


def error_from_json(raw: dict[str, Any]) -> ErrorInfo:
    return ErrorInfo(raw["type"], raw["message"], raw.get("traceback"), tuple(raw.get("mro", ())))


def follow_up_from_next(raw: list[Any] | None, parent_target: str) -> FollowUp | None:
    """next_job() returns (method, args) for the same class, or (target, method, args)."""
    if raw is None:
        return None
    if len(raw) == 2:
        return FollowUp(parent_target, str(raw[0]), tuple(raw[1]))
    return FollowUp(str(raw[0]), str(raw[1]), tuple(raw[2]))
