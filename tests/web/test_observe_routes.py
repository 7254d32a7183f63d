"""The observing routes in-process (the app on a real migrated database): stats, queues with pause and resume
(and their audit rows), workers, the logs' lines, /metrics' series and its token."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families
from webapi import Api, running_api, web_settings

from errands.access import Role, Scope
from errands.client import JobRequest
from errands.jobs import WorkerInfo
from errands.store import SqlStore

# One backend unless a test says otherwise: the store's conformance suites cover the others
pytestmark = pytest.mark.backends("sqlite")
T = TypeVar("T")
METRICS_TOKEN = "m" * 24


def wait_for(predicate: Callable[[], T], timeout_s: float = 30.0) -> T:
    deadline = time.monotonic() + timeout_s
    while not (result := predicate()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def enqueue(api: Api, queue: str = "default", **options: Any) -> int:
    return api.state.client.enqueue(JobRequest("examples.jobs:add", args=[1, 2], queue=queue, **options))


@pytest.mark.backends("sqlite", "postgresql")
def test_stats_counts_by_status_and_queue_with_the_oldest_due(api: Api) -> None:
    enqueue(api)
    enqueue(api, queue="mail")
    api.state.client.cancel(enqueue(api, queue="mail"))
    stats = api.bearer(Role.VIEWER, Scope.READ).get("/api/stats")
    assert stats.status_code == 200, stats.text
    body = stats.json()
    assert body["by_status"]["pending"] == {"count": 2, "exact": True}
    assert body["by_status"]["cancelled"]["count"] == 1
    assert body["by_queue"]["mail"]["pending"] == {"count": 1, "exact": True}
    assert len(body["per_minute"]) == 60 and set(body["per_minute"][0]) == {"minute", "completed", "failed"}
    assert set(body["oldest_due"]) == {"default", "mail"}
    assert all(moment.endswith("Z") for moment in body["oldest_due"].values())


def test_pause_and_resume_a_queue_are_audited(api: Api) -> None:
    enqueue(api, queue="mail")
    operator = api.bearer(Role.OPERATOR, Scope.OPERATE)
    paused = operator.post("/api/queues/mail/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["paused"] is True and paused.json()["pending"] == 1
    listed = {queue["name"]: queue for queue in operator.get("/api/queues").json()["queues"]}
    assert listed["mail"]["paused"] is True and listed["mail"]["due"] == 1
    assert operator.post("/api/queues/mail/resume").json()["paused"] is False
    audit = [(entry.action, entry.subject) for entry in api.state.accounts.audit(limit=10)]
    assert audit[:2] == [("queue.resume", "queue mail"), ("queue.pause", "queue mail")]
    assert api.state.accounts.audit(limit=1)[0].actor == f"{operator.name} (token {operator_token_id(api)})"


def operator_token_id(api: Api) -> int:
    return api.state.accounts.tokens()[0].id


def test_a_session_pauses_with_its_csrf_token_only(api: Api) -> None:
    operator = api.login(Role.OPERATOR)
    no_token = operator.http.post("/api/queues/default/pause")
    assert no_token.status_code == 403
    assert operator.post("/api/queues/default/pause").status_code == 200


@pytest.mark.parametrize("name", ["a b ", " lead", "x" * 101])
def test_a_bad_queue_name_is_a_4xx_json(api: Api, name: str) -> None:
    response = api.bearer(Role.OPERATOR).post(f"/api/queues/{name}/pause")
    assert response.status_code in (400, 422)
    assert "error" in response.json()


def test_workers_lists_the_live_ones(api: Api, db_url: str) -> None:
    viewer = api.bearer(Role.VIEWER, Scope.READ)
    assert viewer.get("/api/workers").json() == {"workers": []}
    store = SqlStore(db_url)
    try:
        now = store.now()
        store.worker_register(WorkerInfo("w-1", "host-a", 4242, ("mail",), 4, now, now))
    finally:
        store.close()
    [worker] = viewer.get("/api/workers").json()["workers"]
    assert worker["id"] == "w-1" and worker["queues"] == ["mail"] and worker["concurrency"] == 4
    assert worker["heartbeat_at"].endswith("Z")


@pytest.mark.backends("sqlite", "postgresql")
def test_logs_are_the_last_lines_exactly_as_written(api: Api, tmp_path: Path) -> None:
    client = api.state.client
    odd = "<script>alert(1)</script> \u00e9\u4e2d \\n tab\there"
    for n in range(12):
        client.log.info(None, f"line {n} {odd}")
    client.log.error(None, "an error line")
    viewer = api.bearer(Role.VIEWER, Scope.READ)

    def shipped() -> dict[str, list[str]] | None:
        body: dict[str, list[str]] = viewer.get("/api/logs").json()
        return body if body["error"] and any("line 11" in line for line in body["job"]) else None

    logs = wait_for(shipped)
    assert len(logs["job"]) == 10  # the default: the Laravel runner's dashboard showed the last 10
    written = (tmp_path / "logs" / "job.log").read_text().splitlines()
    assert logs["job"] == written[-10:]  # oldest first, byte for byte
    assert logs["error"][-1] == (tmp_path / "logs" / "error.log").read_text().splitlines()[-1]
    only = viewer.get("/api/logs", params={"file": "job", "lines": 3}).json()
    assert only == {"job": written[-3:]}


@pytest.mark.parametrize("query", [{"lines": 0}, {"lines": 1001}, {"lines": "x"}, {"file": "secrets"}])
def test_logs_refuse_bad_parameters(api: Api, query: dict[str, Any]) -> None:
    response = api.bearer(Role.VIEWER, Scope.READ).get("/api/logs", params=query)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request"


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.backends("sqlite", "postgresql", "mariadb")
def test_metrics_series_are_errands_and_read_the_database(api: Api) -> None:
    enqueue(api, queue="mail")
    enqueue(api, queue="mail", delay=3600)  # pending, not due
    response = api.anonymous.get("/metrics")  # open by default, as Prometheus expects
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = metric_samples(response.text)
    assert all(name.startswith("errands_") for name, _ in samples)
    assert samples[("errands_jobs", (("status", "pending"),))] == 2
    assert samples[("errands_queue_jobs", (("queue", "mail"), ("status", "pending")))] == 2
    assert samples[("errands_queue_due_jobs", (("queue", "mail"),))] == 1
    assert samples[("errands_queue_oldest_due_age_seconds", (("queue", "mail"),))] >= 0
    assert samples[("errands_queue_paused", (("queue", "mail"),))] == 0
    assert samples[("errands_job_duration_seconds_bucket", (("le", "+Inf"),))] == 0
    assert samples[("errands_workers", ())] == 0


def test_metrics_speak_openmetrics_when_asked(api: Api) -> None:
    response = api.anonymous.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE errands_job_duration_seconds gaugehistogram" in response.text


def test_metrics_token_is_enforced_when_set(db_url: str, tmp_path: Path) -> None:
    with running_api(web_settings(db_url, tmp_path, metrics_token=METRICS_TOKEN)) as api:
        http = api.anonymous
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {METRICS_TOKEN}"}):
            refused = http.get("/metrics", headers=headers)
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"] == "Bearer"
            assert "metrics_token" in refused.json()["error"]
        # an API token is not the metrics token
        assert api.bearer(Role.ADMIN).get("/metrics").status_code == 401
        allowed = http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200 and "errands_jobs" in allowed.text


def test_stats_times_are_iso_with_z(api: Api) -> None:
    enqueue(api)
    minute = api.bearer(Role.VIEWER, Scope.READ).get("/api/stats").json()["per_minute"][-1]["minute"]
    assert datetime.fromisoformat(minute.removesuffix("Z")).second == 0
