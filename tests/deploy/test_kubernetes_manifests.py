"""deploy/kubernetes: each overlay rendered by `kubectl kustomize` and validated by `kubernetes-validate --strict`
(every kind but KEDA's), KEDA's objects by KEDA's own models (cloudcoil-models-keda), and the promises
docs/deploy.md makes of them: probes, resources, a worker that outlasts its drain, scaling that fits the workers,
a restricted pod security, the settings' names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from deploy_files import (
    KEDA_GROUP,
    KUSTOMIZE,
    OVERLAYS,
    config_env,
    container,
    find,
    one,
    pod_specs,
    render,
    run,
    tool,
)

from errands.settings import Settings

RENDERS = ("base", *OVERLAYS)
SECRET_EXAMPLE = KUSTOMIZE / "base" / "secret.example.yaml"


def validate(docs: list[dict[str, Any]], folder: Path) -> str:
    """kubernetes-validate --strict over the documents; returns its complaints ("" when there are none)."""
    path = folder / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    done = run(tool("kubernetes-validate"), "--strict", "--quiet", str(path))
    return "" if done.returncode == 0 else done.stdout + done.stderr


def keda_complaints(doc: dict[str, Any]) -> list[str]:
    """KEDA's models accept the document, and keep every field of it: a field they drop is one KEDA doesn't
    know (its models ignore unknown fields, so a round trip is the strict check)."""
    model = getattr(keda, doc["kind"]).model_validate(doc)
    kept = model.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"{doc['kind']}/{doc['metadata']['name']}: unknown field {path}" for path in _lost(doc, kept, "")]


def _lost(sent: Any, kept: Any, path: str) -> list[str]:
    if isinstance(sent, dict):
        kept = kept if isinstance(kept, dict) else {}
        return [p for key, value in sent.items() for p in _lost(value, kept.get(key, _MISSING), f"{path}.{key}")]
    if isinstance(sent, list):
        kept = kept if isinstance(kept, list) else []
        return [
            p
            for i, value in enumerate(sent)
            for p in _lost(value, kept[i] if i < len(kept) else _MISSING, f"{path}[{i}]")
        ]
    return [] if kept == sent else [path]


_MISSING = object()


@pytest.mark.parametrize("name", RENDERS)
def test_every_kind_but_kedas_is_valid_kubernetes(name: str, tmp_path: Path) -> None:
    core = [doc for doc in render(name) if not doc["apiVersion"].startswith(KEDA_GROUP)]
    assert validate(core, tmp_path) == ""


def test_the_secret_example_is_valid_kubernetes(tmp_path: Path) -> None:
    assert validate(list(yaml.safe_load_all(SECRET_EXAMPLE.read_text())), tmp_path) == ""


@pytest.mark.parametrize("name", RENDERS)
def test_kedas_objects_fit_kedas_models(name: str) -> None:
    for doc in render(name):
        if doc["apiVersion"].startswith(KEDA_GROUP):
            assert keda_complaints(doc) == []


def test_the_validators_are_strict(tmp_path: Path) -> None:
    """Both checks above refuse a misspelt field (so their silence means something)."""
    deployment = dict(one(render("base"), "Deployment", "errands-worker"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    assert "replica" in validate([deployment], tmp_path)
    scaled = dict(one(render("base"), "ScaledObject", "errands-worker"))
    scaled["spec"] = {**scaled["spec"], "minReplicas": 2}
    assert keda_complaints(scaled) == ["ScaledObject/errands-worker: unknown field .spec.minReplicas"]


@pytest.mark.parametrize("name", RENDERS)
def test_web_has_liveness_on_healthz_and_readiness_on_readyz(name: str) -> None:
    web = container(render(name), "errands-web")
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    args = web["args"]
    assert args[:1] == ["serve"] and args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    assert web["ports"] == [{"name": "http", "containerPort": port}]


@pytest.mark.parametrize("name", RENDERS)
def test_the_worker_outlasts_its_drain(name: str) -> None:
    docs = render(name)
    grace = float(config_env(docs)["ERRANDS_GRACE"])
    spec = one(docs, "Deployment", "errands-worker")["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] >= grace + 15
    assert container(docs, "errands-worker")["args"][0] == "worker"
    assert "livenessProbe" not in container(docs, "errands-worker"), "a database outage must not restart workers"


@pytest.mark.parametrize("name", RENDERS)
def test_every_container_has_requests_and_limits(name: str) -> None:
    for where, spec in pod_specs(render(name)).items():
        for box in spec.get("initContainers", []) + spec["containers"]:
            for kind in ("requests", "limits"):
                assert set(box["resources"][kind]) >= {"cpu", "memory"}, f"{where} {box['name']}: {kind}"


@pytest.mark.parametrize("name", RENDERS)
def test_pods_meet_the_restricted_pod_security_standard(name: str) -> None:
    """The namespace enforces it, so a pod that doesn't would never start."""
    docs = render(name)
    assert one(docs, "Namespace", "errands")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for where, spec in pod_specs(docs).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for box in spec.get("initContainers", []) + spec["containers"]:
            assert box["securityContext"]["allowPrivilegeEscalation"] is False, f"{where} {box['name']}"
            assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}, f"{where} {box['name']}"


@pytest.mark.parametrize("name", RENDERS)
def test_errands_pods_wait_for_the_migration(name: str) -> None:
    docs = render(name)
    job = one(docs, "Job", "errands-migrate")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["migrate"]
    for deployment in ("errands-web", "errands-worker"):
        spec = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]
        [wait] = spec["initContainers"]
        assert wait["command"] == ["errands-wait-for-schema"]
        assert wait["image"] == spec["containers"][0]["image"], "the wait checks the schema this image expects"


@pytest.mark.parametrize("name", RENDERS)
def test_references_resolve(name: str) -> None:
    """Every ConfigMap, Secret, Deployment and Service a document names is one the render has (the Secret: the
    dev overlay makes it; elsewhere the example shows it)."""
    docs = render(name)
    configs = {d["metadata"]["name"] for d in find(docs, "ConfigMap")}
    secrets = {d["metadata"]["name"] for d in find(docs, "Secret")} or {
        d["metadata"]["name"] for d in yaml.safe_load_all(SECRET_EXAMPLE.read_text())
    }
    example_keys = set(yaml.safe_load(SECRET_EXAMPLE.read_text())["stringData"])
    for where, spec in pod_specs(docs).items():
        for box in spec.get("initContainers", []) + spec["containers"]:
            for source in box.get("envFrom", []):
                assert source["configMapRef"]["name"] in configs, where
            for env in box.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and ref["name"] != "errands-secrets":
                    pytest.fail(f"{where}: unknown Secret {ref['name']}")
                if ref and not find(docs, "Secret"):
                    assert ref["key"] in example_keys, f"{where}: the Secret example lacks {ref['key']}"
    assert secrets == {"errands-secrets"}
    deployments = {d["metadata"]["name"] for d in find(docs, "Deployment")}
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments
    for scaled in find(docs, "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        [trigger] = scaled["spec"]["triggers"]
        auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "connection", "name": "errands-secrets", "key": "database-url"}
        ]
    services = {d["metadata"]["name"] for d in find(docs, "Service")}
    for ingress in find(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] in services


@pytest.mark.parametrize("name", ["base", "prod"])
def test_keda_scales_workers_on_due_jobs_a_worker_can_take(name: str) -> None:
    docs = render(name)
    scaled = one(docs, "ScaledObject", "errands-worker")
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "postgresql"
    args = container(docs, "errands-worker")["args"]
    concurrency = int(args[args.index("--concurrency") + 1])
    assert int(trigger["metadata"]["targetQueryValue"]) >= concurrency, "a worker would be added for jobs it can run"
    assert "status = 'pending'" in trigger["metadata"]["query"]
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    assert not find(docs, "HorizontalPodAutoscaler", "errands-worker"), "KEDA makes the worker's HPA itself"


def test_prod_has_more_of_everything_than_dev() -> None:
    dev, prod = render("dev"), render("prod")
    assert one(dev, "HorizontalPodAutoscaler", "errands-web")["spec"]["maxReplicas"] == 1
    assert one(prod, "HorizontalPodAutoscaler", "errands-web")["spec"]["minReplicas"] >= 2
    assert one(prod, "ScaledObject", "errands-worker")["spec"]["minReplicaCount"] >= 2
    assert not [d for d in dev if d["apiVersion"].startswith(KEDA_GROUP)], "dev runs on a cluster without KEDA"
    assert not find(prod, "Secret"), "prod's Secret is made by hand, never by a placeholder in the repository"
    assert one(prod, "Ingress", "errands-web")["spec"]["tls"]
    assert one(dev, "StatefulSet", "postgres")["spec"]["replicas"] == 1


@pytest.mark.parametrize("name", RENDERS)
def test_the_config_map_loads_as_settings(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every ERRANDS_ key names a setting (the settings ignore unknown keys: a typo would pass silently)."""
    monkeypatch.chdir(tmp_path)
    for key, value in config_env(render(name)).items():
        if key.startswith("ERRANDS_"):
            assert key.removeprefix("ERRANDS_").lower() in Settings.model_fields, f"{key} is no setting"
        monkeypatch.setenv(key, value)
    for where, spec in pod_specs(render(name)).items():
        for box in spec.get("initContainers", []) + spec["containers"]:
            for env in box.get("env", []):
                key = env["name"]
                assert not key.startswith("ERRANDS_") or key[8:].lower() in Settings.model_fields, f"{where}: {key}"
    monkeypatch.setenv("ERRANDS_DATABASE_URL", "postgresql://errands@db/errands")
    settings = Settings()
    assert settings.allowed_jobs and str(settings.log_file).startswith("/var/lib/errands/")


def test_image_names_are_set_by_the_overlays() -> None:
    for name, image in (("dev", "errands:dev"), ("prod", re.compile(r"registry\.example\.com/errands:\d"))):
        for spec in pod_specs(render(name)).values():
            for box in spec.get("initContainers", []) + spec["containers"]:
                if box["name"] != "postgres":
                    assert image == box["image"] if isinstance(image, str) else image.match(box["image"])
