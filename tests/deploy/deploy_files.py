"""The deployment files, read the way their tools read them: the tests of tests/deploy share these."""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
SCRIPTS = sorted((DEPLOY / "docker").glob("*.sh"))
COMPOSE = DEPLOY / "compose.yaml"
KUSTOMIZE = DEPLOY / "kubernetes"
OVERLAYS = ("dev", "prod")
GRAFANA_DASHBOARD = DEPLOY / "grafana" / "dashboards" / "errands.json"
KEDA_GROUP = "keda.sh/"


def tool(name: str) -> str:
    """A tool the test extras install into this virtualenv (its bin folder may not be on PATH)."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is missing: `pip install -e '.[test]'` installs it"
    return found


def run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@cache
def render(kustomization: str) -> tuple[dict[str, Any], ...]:
    """`kubectl kustomize` of base or overlays/NAME: the documents a `kubectl apply -k` would send."""
    folder = KUSTOMIZE / ("base" if kustomization == "base" else f"overlays/{kustomization}")
    done = run(tool("kubectl"), "kustomize", str(folder))
    assert done.returncode == 0, f"kubectl kustomize {folder} failed:\n{done.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(done.stdout) if doc)


def find(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    [doc] = find(docs, kind, name)
    return doc


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def config_env(docs: tuple[dict[str, Any], ...]) -> dict[str, str]:
    """The rendered errands-config ConfigMap's data (its name carries kustomize's hash)."""
    [config] = [d for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("errands-config")]
    data: dict[str, str] = config["data"]
    return data


def pod_specs(docs: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Every pod template in the render, by `Kind/name`."""
    return {
        f"{d['kind']}/{d['metadata']['name']}": d["spec"]["template"]["spec"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def container(docs: tuple[dict[str, Any], ...], deployment: str) -> dict[str, Any]:
    [main] = one(docs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return main
