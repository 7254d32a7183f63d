"""Who is running: an owner id for leases and a host:pid for attempt rows."""

from __future__ import annotations

import os
import secrets
import socket
from datetime import datetime, timedelta

from errands.jobs import Lease
from errands.store.base import Claim


def host_pid() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def new_owner(kind: str) -> str:
    return f"{kind}:{host_pid()}:{secrets.token_hex(4)}"


def new_token() -> str:
    return secrets.token_hex(16)


def claim_for(
    owner: str, token: str, lease_s: float, queues: tuple[str, ...] = (), exclude: tuple[str, ...] = ()
) -> Claim:
    return Claim(owner=owner, token=token, lease_s=lease_s, worker=host_pid(), queues=queues, exclude=exclude)


def lease_until(claim: Claim, now: datetime) -> Lease:
    return Lease(claim.owner, claim.token, now + timedelta(seconds=claim.lease_s))
