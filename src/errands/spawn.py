"""run_background_job(): record a job and run it in a detached OS process that outlives the caller.

The job is inserted reserved to a fresh lease, so no worker takes it; the detached process claims it by that
lease's token. If the process never starts or dies, the lease expires and a worker or the rescuer takes over.
With dispatch = "queue" the job is only enqueued, for deployments that run workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from errands.client import Client, JobRequest
from errands.jobs import Lease
from errands.worker.identity import new_owner, new_token

# The detached processes this process started and hasn't reaped: a Popen dropped while its process runs warns
# (ResourceWarning, an error under -W error) and leaves a zombie; each call reaps those that have ended.
_started: list[subprocess.Popen[bytes]] = []
_started_lock = threading.Lock()

DETACHED_PROCESS = 0x00000008  # Windows creation flags, spelled out so POSIX can test them
CREATE_NEW_PROCESS_GROUP = 0x00000200


def spawn_command(job_id: int, lease: Lease) -> list[str]:
    return [sys.executable, "-m", "errands.worker.detached", str(job_id), lease.owner, lease.token]


def spawn_kwargs(log_file: Path, platform: str = os.name) -> dict[str, Any]:
    """Popen arguments that detach: POSIX a new session; Windows no console and a new process group."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    output = log_file.open("ab")
    common: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": output,
        "stderr": output,
        "close_fds": True,
    }
    if platform == "nt":
        return {**common, "creationflags": DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP}
    return {**common, "start_new_session": True}


def run_background_job(
    client: Client,
    target: str,
    method: str,
    params: Sequence[Any] = (),
    priority: int | None = None,
    *,
    delay: float = 0,
    queue: str = "default",
    **options: Any,
) -> int:
    """Record the job and start a detached process that runs it; return its id at once."""
    request = JobRequest(target, method, args=params, priority=priority, delay=delay, queue=queue, **options)
    return dispatch(client, request)


def dispatch(client: Client, request: JobRequest) -> int:
    """run_background_job() for a request already built (`errands run-job --background`)."""
    if client.settings.dispatch == "queue":
        return client.enqueue(request)
    owner = new_owner("spawn")
    lease = Lease(owner, new_token(), client.store.now() + timedelta(seconds=client.settings.lease_timeout))
    job_id = client.enqueue(request, reserve=lease)
    kwargs = spawn_kwargs(client.settings.log_file)
    try:
        with _started_lock:
            _started[:] = [proc for proc in _started if proc.poll() is None]
            _started.append(subprocess.Popen(spawn_command(job_id, lease), **kwargs))
    finally:
        kwargs["stdout"].close()
    client.log.dispatched(job_id)
    return job_id
