"""The probes: /healthz (the process answers; no database) and /readyz (the database answers a round trip).

Both are open (no identity): a load balancer or Kubernetes calls them. /readyz is 503 while the database can't
be reached and 200 again, by itself, once it can: the round trip takes a fresh connection when the pool's died.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends

from errands.errors import StoreError
from errands.web.deps import AppState, app_state
from errands.web.observe_models import HealthOut, ReadyOut
from errands.web.responses import JSONResponse

router = APIRouter(tags=["health"])
log = logging.getLogger("errands.web")

State = Annotated[AppState, Depends(app_state)]


@router.get("/healthz", response_model=HealthOut)
def healthz() -> HealthOut:
    """The process is up and serving (liveness): it asks nothing of the database."""
    return HealthOut()


@router.get("/readyz", response_model=ReadyOut, responses={503: {"model": ReadyOut, "description": "no database"}})
def readyz(state: State) -> ReadyOut | JSONResponse:
    """The database answers (readiness): 503 while it doesn't."""
    try:
        state.client.ping()
    except StoreError as exc:
        # what the database said stays in the log: its URL or host is nobody's business
        log.warning("readyz: database unavailable: %s", exc)
        unready = ReadyOut(status="unavailable", error="database unavailable")
        return JSONResponse(unready.model_dump(), status_code=503, headers={"Retry-After": "1"})
    return ReadyOut(status="ready")
