"""The jobs routes: list with filters and keyset pages, detail, enqueue, cancel, retry, bulk, failure groups."""

from __future__ import annotations

import time

import pytest
from webapi import Api, Caller

from errands import testing
from errands.access import Role, Scope
from errands.client import JobRequest

ADD = "examples.jobs:add"
FAILING = "examples.jobs.FailingJob"


@pytest.fixture
def operator(api: Api) -> Caller:
    return api.bearer(Role.OPERATOR, Scope.OPERATE)


def enqueue(caller: Caller, **body: object) -> int:
    response = caller.post("/api/jobs", json={"target": ADD, "args": [1, 2], **body})
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    assert response.json()["job"]["id"] == job_id
    return job_id


def test_enqueue_then_read_it_back_as_the_cli_shows_it(api: Api, operator: Caller) -> None:
    job_id = enqueue(operator, kwargs={}, priority=7, queue="mail", delay=60)
    detail = operator.get(f"/api/jobs/{job_id}")
    assert detail.status_code == 200
    job = detail.json()
    assert job["target"] == ADD and job["args"] == [1, 2] and job["priority"] == 7 and job["queue"] == "mail"
    assert job["status"] == "pending" and job["attempts_history"] == [] and job["follow_ups"] == []
    assert job.keys() >= api.state.client.get(job_id).to_json().keys()
    [entry] = [e for e in api.state.accounts.audit() if e.action == "job.enqueue"]
    assert entry.actor == f"{operator.name} (token {operator_token_id(api, operator)})"
    assert entry.subject == f"job {job_id}"


def operator_token_id(api: Api, caller: Caller) -> int:
    [token] = [t for t in api.state.accounts.tokens() if t.user == caller.name]
    return token.id


@pytest.mark.backends("sqlite")
def test_the_allow_list_refusal_is_a_400_with_the_reason(api: Api, operator: Caller) -> None:
    refused = operator.post("/api/jobs", json={"target": "os", "method": "system", "args": ["echo pwned"]})
    assert refused.status_code == 400
    assert "refused os::system" in refused.json()["error"]
    assert api.state.client.jobs() == []


@pytest.mark.backends("sqlite")
def test_script_in_the_args_comes_back_as_json_data(operator: Caller) -> None:
    payload = "<script>alert(1)</script>"
    job_id = enqueue(operator, args=[payload, 1])
    answer = operator.get(f"/api/jobs/{job_id}")
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.json()["args"] == [payload, 1]
    listed = operator.get("/api/jobs", params={"q": "add"})
    assert listed.headers["content-type"] == "application/json"
    assert listed.json()["jobs"][0]["args"][0] == payload


def test_list_filters_and_keyset_pages(api: Api, operator: Caller) -> None:
    client = api.state.client
    ids = [client.enqueue(JobRequest(ADD, args=[n, 1], kwargs={"customer_id": n % 3})) for n in range(7)]
    mail = client.enqueue(JobRequest("examples.jobs.SampleJob", "send_email", args=["a@example.com"], queue="mail"))
    client.cancel(ids[0])

    seen: list[int] = []
    before: int | None = None
    while True:
        params: dict[str, object] = {"limit": 3, **({"before": before} if before else {})}
        page = operator.get("/api/jobs", params=params).json()
        assert page["count"] == 8 and page["count_exact"] is True
        seen += [job["id"] for job in page["jobs"]]
        before = page["next"]
        if before is None:
            break
    assert seen == sorted([*ids, mail], reverse=True)

    def found(**params: object) -> list[int]:
        answer = operator.get("/api/jobs", params=params)
        assert answer.status_code == 200, answer.text
        return [job["id"] for job in answer.json()["jobs"]]

    assert found(queue="mail") == [mail]
    assert found(target=ADD, status="pending") == sorted(ids[1:], reverse=True)
    assert found(status="cancelled,pending", queue="default") == sorted(ids, reverse=True)
    assert found(status=["cancelled"]) == [ids[0]]
    assert found(q="SAMPLEJOB") == [mail]  # text in the target, any case
    assert found(args='{"customer_id": 1}') == [ids[4], ids[1]]
    assert found(args="6") == [ids[6]]
    assert found(created_after="2000-01-01T00:00:00Z", created_before="2999-01-01T00:00:00+02:00", limit=1) == [mail]
    assert found(created_after="2999-01-01T00:00:00") == []


@pytest.mark.backends("sqlite")
def test_bad_filters_are_4xx_with_a_json_body(operator: Caller) -> None:
    for params in (
        {"status": "sleeping"},
        {"args": "{not json"},
        {"args": "[" * 5000 + "]" * 5000},
        {"args": "1" + "0" * 5000},
        {"limit": 0},
        {"limit": 501},
        {"before": 2**63},
        {"before": "x"},
        {"created_after": "yesterday"},
        {"queue": "q" * 101},
        {"unknown_filter": "is ignored"},
    ):
        answer = operator.get("/api/jobs", params=params)
        if "unknown_filter" in params:
            assert answer.status_code == 200
            continue
        assert answer.status_code in (400, 422), (params, answer.text)
        assert answer.json()["error"], params


def test_cancel_and_retry_with_their_409s(api: Api, operator: Caller) -> None:
    job_id = enqueue(operator)
    assert operator.post(f"/api/jobs/{job_id}/retry").status_code == 409  # pending: nothing to retry
    cancelled = operator.post(f"/api/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = operator.post(f"/api/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert "cancelled" in again.json()["error"]
    retried = operator.post(f"/api/jobs/{job_id}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    actions = [e.action for e in api.state.accounts.audit() if e.subject == f"job {job_id}"]
    assert sorted(actions) == ["job.cancel", "job.enqueue", "job.retry"]  # the refused ones are not actions


@pytest.mark.backends("sqlite")
def test_unknown_and_impossible_ids(operator: Caller) -> None:
    for url in ("/api/jobs/999999", "/api/jobs/bulk/999999"):
        answer = operator.get(url)
        assert answer.status_code == 404, url
        assert "not found" in answer.json()["error"]
    assert operator.post("/api/jobs/999999/cancel").status_code == 404
    for bad in ("abc", "0", "-1", str(2**63), "1.5", "1e3"):
        answer = operator.get(f"/api/jobs/{bad}")
        assert answer.status_code == 422, bad
        assert answer.json()["error"] == "invalid request"


def test_detail_shows_attempts_and_failure_groups(api: Api, operator: Caller) -> None:
    failing = enqueue(operator, target=FAILING, method="process", args=["a", "b"])
    enqueue(operator, target=FAILING, method="process", args=["c"])
    ran = testing.drain(api.state.client)
    assert {job.status.value for job in ran} == {"failed"}
    detail = operator.get(f"/api/jobs/{failing}").json()
    [attempt] = detail["attempts_history"]
    assert attempt["outcome"] == "failed" and attempt["error_type"] == "RuntimeError"
    groups = operator.get("/api/failures").json()["groups"]
    assert [(g["error_type"], g["target"], g["count"]) for g in groups] == [("RuntimeError", FAILING, 2)]
    assert groups[0]["sample_message"] == "Simulated job failure"


def test_bulk_cancel_by_filter_with_a_dry_run_and_progress(api: Api, operator: Caller) -> None:
    client = api.state.client
    client.enqueue_many([JobRequest(ADD, args=[n, 0], queue="bulk") for n in range(30)])
    client.enqueue(JobRequest(ADD, args=[1, 1]))
    body = {"action": "cancel", "filter": {"queue": "bulk", "status": ["pending"]}}
    dry = operator.post("/api/jobs/bulk", json={**body, "dry_run": True})
    assert dry.status_code == 200 and dry.json() == {"count": 30, "count_exact": True}
    assert client.jobs(queue="bulk")[0].status.value == "pending"  # a dry run changes nothing
    started = operator.post("/api/jobs/bulk", json=body)
    assert started.status_code == 202, started.text
    run = started.json()["run"]
    assert run["action"] == "cancel" and run["status"] == "running"
    deadline = time.monotonic() + 30
    while run["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # the run goes on in a thread of the server: poll its progress as the dashboard would
        run = operator.get(f"/api/jobs/bulk/{run['id']}").json()["run"]
    assert run["status"] == "done" and run["total"] == run["done"] == 30 and run["skipped"] == 0
    assert {job.status.value for job in client.jobs(queue="bulk")} == {"cancelled"}
    assert client.jobs(queue="default")[0].status.value == "pending"
    [entry] = [e for e in api.state.accounts.audit() if e.action == "jobs.bulk_cancel"]
    assert entry.subject == f"bulk run {run['id']}" and '"queue":"bulk"' in entry.detail


@pytest.mark.backends("sqlite")
def test_bulk_refuses_a_bad_action_or_filter(operator: Caller) -> None:
    for body in (
        {"action": "delete", "filter": {}},
        {"action": "cancel", "filter": {"status": ["nope"]}},
        {"action": "cancel", "filter": {"typo": 1}},
        {"action": "cancel", "filter": {"args": {"a": 2**64}}},
        {"action": "cancel", "filter": "queue=x"},
    ):
        answer = operator.post("/api/jobs/bulk", json=body)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert answer.json()["error"]


@pytest.mark.backends("sqlite")
def test_an_infinite_result_is_a_string_not_a_500(api: Api, operator: Caller) -> None:
    job_id = enqueue(operator, args=[1e308, 1e308])  # add() overflows to inf: no JSON number holds it
    [job] = testing.drain(api.state.client)
    assert job.status.value == "completed"
    answer = operator.get(f"/api/jobs/{job_id}")
    assert answer.status_code == 200
    assert answer.json()["result"] == "Infinity"
