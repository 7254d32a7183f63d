"""GET /api/events: server-sent events of job changes, so the dashboard updates live.

Each batch is one `event: jobs` whose data is a JSON list of jobs (each as GET /api/jobs/{id} shows it,
without attempts), at most one batch per 250 ms per stream, each job at its latest state. A comment line
every ~15 s keeps proxies from closing a quiet stream. The stream starts with a `: live` comment once every
later change will reach it, and `retry: 3000` (the browser's EventSource reconnects by itself after 3 s).
Needs READ; not counted by the rate limit (it is one long request). The changes come from the process's one
ChangeHub (errands.web.changes), made by this router's lifespan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from errands.access import Action, Identity
from errands.client import Client
from errands.reports import JobChange
from errands.web.changes import ChangeHub, Feed, Stoppable
from errands.web.deps import AppState, requires
from errands.web.responses import finite
from errands.web.schemas import ErrorOut

RECONNECT_MS = 3000
HUB = "errands_events"  # the ChangeHub's name on app.state


def hub_for(client: Client) -> ChangeHub:
    """The process's one reader of job changes, fanned out to every open stream."""

    def feed() -> Feed:
        return client.change_feed()

    def listen(wake: Callable[[], None]) -> Stoppable | None:
        return client.listen_changes(wake)

    return ChangeHub(feed, listen)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Inside the app's own lifespan (its AppState exists): one hub; at shutdown the open streams end."""
    state: AppState = app.state.errands
    hub = hub_for(state.client)
    setattr(app.state, HUB, hub)
    try:
        yield
    finally:
        await asyncio.to_thread(hub.close)


router = APIRouter(prefix="/api", tags=["events"], lifespan=lifespan)
Reader = Annotated[Identity, Depends(requires(Action.READ, counted=False))]


def batch_event(batch: list[JobChange]) -> ServerSentEvent:
    jobs: list[dict[str, Any]] = [change.job.to_json() for change in batch]
    # ASCII JSON: a lone surrogate in a job's arguments can't break the UTF-8 of the stream; NaN as a string
    return ServerSentEvent(event="jobs", raw_data=json.dumps(finite(jobs), allow_nan=False, separators=(",", ":")))


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={code: {"model": ErrorOut} for code in (401, 403)},
)
async def events(request: Request, identity: Reader) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: `event: jobs` with a JSON list of the jobs that changed, each at its latest state."""
    hub: ChangeHub = getattr(request.app.state, HUB)
    subscription = hub.subscribe(asyncio.get_running_loop())
    try:
        await subscription.live()
        yield ServerSentEvent(comment="live", retry=RECONNECT_MS)
        while (batch := await subscription.next_batch()) is not None:
            yield batch_event(batch)
            await asyncio.sleep(hub.timing.batch_s)  # at most one batch per batch_s: the rest gathers meanwhile
    finally:
        subscription.close()
