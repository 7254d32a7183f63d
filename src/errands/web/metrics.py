"""GET /metrics: Prometheus' text format, every series named errands_*, read from the database at scrape time.

Nothing is counted in this process: a collector asks the Client at each scrape, so every replica shows the same
numbers, whichever worker on whichever machine did the work. So every series is a gauge (a value the database
holds now, or over a recent window); none is a Prometheus counter, which must never go down, and pruning lowers
what the database holds. docs/api.md lists the series. Open by default, as Prometheus expects; with
settings.metrics_token set it takes `Authorization: Bearer <metrics_token>` and nothing else.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client.core import CollectorRegistry, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from errands.client import Client
from errands.web.deps import AppState, app_state
from errands.web.errors import ApiError
from errands.web.schemas import ErrorOut

router = APIRouter(tags=["health"])

State = Annotated[AppState, Depends(app_state)]


class ErrandsCollector:
    """The series, read through the Client at each collect(): stats, queues, workers, recent finishes."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        yield from self._jobs()
        yield from self._queues()
        yield from self._recent()
        yield from self._workers()
        yield GaugeMetricFamily(
            "errands_scrape_duration_seconds",
            "Seconds this scrape spent reading the database.",
            value=time.perf_counter() - started,
        )

    def _jobs(self) -> Iterator[Metric]:
        stats = self.client.stats()
        held = GaugeMetricFamily(
            "errands_jobs",
            "Jobs in the database by status (completed may be an estimate on PostgreSQL; pruning lowers it).",
            labels=["status"],
        )
        for status, count in sorted(stats.by_status.items()):
            held.add_metric([status], count.value)
        yield held
        finished = GaugeMetricFamily(
            "errands_jobs_finished_last_hour", "Jobs completed or failed in the last hour.", labels=["status"]
        )
        finished.add_metric(["completed"], sum(minute.completed for minute in stats.per_minute))
        finished.add_metric(["failed"], sum(minute.failed for minute in stats.per_minute))
        yield finished

    def _queues(self) -> Iterator[Metric]:
        queues = self.client.queues()
        labels = ["queue"]
        by_status = GaugeMetricFamily(
            "errands_queue_jobs", "Unfinished jobs by queue and status.", labels=[*labels, "status"]
        )
        due = GaugeMetricFamily(
            "errands_queue_due_jobs", "Pending jobs due now (the autoscaling signal).", labels=labels
        )
        age = GaugeMetricFamily(
            "errands_queue_oldest_due_age_seconds", "How long the oldest due job has waited; 0 if none.", labels=labels
        )
        paused = GaugeMetricFamily("errands_queue_paused", "1 while the queue is paused.", labels=labels)
        for queue in queues:
            by_status.add_metric([queue.name, "pending"], queue.pending)
            by_status.add_metric([queue.name, "running"], queue.running)
            due.add_metric([queue.name], queue.due)
            age.add_metric([queue.name], queue.oldest_due_age_s)
            paused.add_metric([queue.name], 1 if queue.paused else 0)
        yield from (by_status, due, age, paused)

    def _recent(self) -> Iterator[Metric]:
        recent = self.client.finished_recently()
        window = f"{recent.window_s:g} s"
        buckets = [(f"{bound:g}", float(n)) for bound, n in zip(recent.bounds, recent.buckets, strict=True)]
        buckets.append(("+Inf", float(recent.count)))
        durations = GaugeHistogramMetricFamily(
            "errands_job_duration_seconds",
            f"Duration of the last attempt of the jobs completed or failed in the last {window}.",
            buckets=buckets,
            gsum_value=recent.sum_s,
        )
        yield durations
        attempts = GaugeMetricFamily(
            "errands_job_attempts_recent",
            f"Attempts, by outcome, of the jobs completed or failed in the last {window}.",
            labels=["outcome"],
        )
        for outcome, n in sorted(recent.attempts.items()):
            attempts.add_metric([outcome], n)
        yield attempts

    def _workers(self) -> Iterator[Metric]:
        live = self.client.workers()
        yield GaugeMetricFamily(
            "errands_workers", "Live workers (heartbeat within the lease timeout).", value=len(live)
        )
        yield GaugeMetricFamily(
            "errands_worker_slots",
            "Jobs the live workers can run at once (their concurrency).",
            value=sum(worker.concurrency for worker in live),
        )


def check_token(expected: str | None, request: Request) -> None:
    """No token set: open. Set: `Authorization: Bearer <it>`, compared in constant time."""
    if expected is None:
        return
    scheme, _, sent = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected.encode()):
        raise ApiError(
            401, "/metrics takes `Authorization: Bearer <metrics_token>`", headers={"WWW-Authenticate": "Bearer"}
        )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"},
        401: {"model": ErrorOut, "description": "metrics_token is set and the request did not carry it"},
        503: {"model": ErrorOut, "description": "the database is unavailable"},
    },
)
def metrics(request: Request, state: State) -> Response:
    """The errands_* series for Prometheus, read from the database now (OpenMetrics when the scraper asks)."""
    check_token(state.settings.metrics_token, request)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ErrandsCollector(state.client))
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(registry), media_type=content_type)
