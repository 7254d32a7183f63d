"""deploy/compose.yaml against the compose specification, and the promises docs/deploy.md makes of it: the
migration runs once before the rest, workers scale, stopping outlasts the worker's grace, secrets come from the
environment, and the files it mounts (nginx, Prometheus, Grafana) exist and fit together."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import crossplane
import pytest
import yaml
from deploy_files import COMPOSE, DEPLOY, GRAFANA_DASHBOARD, compose, run, tool

from errands.settings import Settings

ERRANDS_SERVICES = ("migrate", "web", "worker")


def seconds(duration: str) -> float:
    """A compose duration ("1m30s", "60s")."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(n) * units[u] for n, u in parts)


def services() -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"]
    return found


def test_the_compose_specification_accepts_it() -> None:
    done = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_compose_check_is_live(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    image: x\n    stop_grace_perod: 60s\n")  # a typo
    assert run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)).returncode != 0


def test_the_migration_runs_once_before_web_and_workers() -> None:
    migrate = services()["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("web", "worker"):
        assert services()[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_workers_scale_and_outlast_their_grace() -> None:
    worker = services()["worker"]
    assert worker["command"][0] == "worker"
    assert "container_name" not in worker and "ports" not in worker, "--scale worker=N needs neither"
    grace = float(worker["environment"]["ERRANDS_GRACE"])
    assert grace == Settings.model_fields["grace"].default, "docs/deploy.md speaks of the default grace"
    assert seconds(worker["stop_grace_period"]) >= grace + 15, "the drain must end before Docker's SIGKILL"


def test_secrets_come_from_the_environment_and_are_required() -> None:
    text = COMPOSE.read_text()
    assert "${ERRANDS_SECRET_KEY:?" in text
    assert "${POSTGRES_PASSWORD:?" in text
    for name in ERRANDS_SERVICES:
        env = services()[name]["environment"]
        assert env["ERRANDS_SECRET_KEY"].startswith("${ERRANDS_SECRET_KEY:?")
        assert "${POSTGRES_PASSWORD:?" in env["ERRANDS_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in services()["postgres"]["environment"]["POSTGRES_PASSWORD"]


def test_the_errands_services_share_one_image_built_from_the_repository() -> None:
    for name in ERRANDS_SERVICES:
        service = services()[name]
        assert service["image"] == "${ERRANDS_IMAGE:-errands:latest}"
        assert service["build"] == {"context": "..", "dockerfile": "deploy/docker/Dockerfile"}
    assert (COMPOSE.parent / ".." / "deploy/docker/Dockerfile").resolve().is_file()


def test_only_nginx_is_published_and_it_reaches_the_web_port() -> None:
    public = {
        name for name, s in services().items() if any(not str(p).startswith("127.0.0.1:") for p in s.get("ports", []))
    }
    assert public == {"nginx"}
    web = services()["web"]["command"]
    port = web[web.index("--port") + 1]
    assert web[web.index("--host") + 1] == "0.0.0.0"
    assert f"http://web:{port}" in (DEPLOY / "nginx" / "errands.conf").read_text()
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"web:{port}"]
    assert job["metrics_path"] == "/metrics"


def test_mounted_files_exist() -> None:
    for name, service in services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts {source}: it doesn't exist"


def test_nginx_config_parses_in_its_http_context(tmp_path: Path) -> None:
    main = tmp_path / "nginx.conf"
    main.write_text(f"events {{}}\nhttp {{ include {DEPLOY / 'nginx' / 'errands.conf'}; }}\n")
    parsed = crossplane.parse(str(main), strict=True, check_ctx=True, check_args=True)
    assert parsed["status"] == "ok", parsed["errors"]


def test_nginx_streams_events_unbuffered_and_hides_metrics() -> None:
    text = (DEPLOY / "nginx" / "errands.conf").read_text()
    events = re.search(r"location = /api/events \{(.*?)\}", text, re.S)
    assert events and "proxy_buffering off;" in events[1]
    assert re.search(r"location = /metrics \{\s*return 404;\s*\}", text)


def test_grafana_is_provisioned_with_the_dashboard_and_its_data_source() -> None:
    grafana = services()["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":") for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    [source] = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())["datasources"]
    [provider] = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/errands.yaml").read_text())["providers"]
    assert provider["options"]["path"] == mounts["./grafana/dashboards"]
    assert source["url"] == "http://prometheus:9090"
    uids = {p["datasource"]["uid"] for p in json.loads(GRAFANA_DASHBOARD.read_text())["panels"] if "datasource" in p}
    assert uids == {source["uid"]}
    assert grafana["profiles"] == services()["prometheus"]["profiles"] == ["observability"]


def _interpolated(variable: re.Match[str]) -> str:
    """${VAR:-default} as compose fills it in with VAR unset; ${VAR:?message} as if the user set VAR."""
    return variable[2] if variable[1] == "-" else "s3cret-" * 6


@pytest.mark.parametrize("name", ERRANDS_SERVICES)
def test_the_environment_loads_as_settings(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every ERRANDS_ key names a setting, and the values (defaults filled in) load: a typo in a key would be
    ignored by the settings (extra="ignore"), so it is caught here."""
    monkeypatch.chdir(tmp_path)
    for key, raw in services()[name]["environment"].items():
        value = re.sub(r"\$\{\w+:([-?])([^}]*)\}", _interpolated, raw)
        if key.startswith("ERRANDS_"):
            field = key.removeprefix("ERRANDS_").lower()
            assert field in Settings.model_fields, f"{name}: {key} is no setting"
        monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.database_url.startswith("postgresql://errands:")
    assert settings.allowed_jobs, "the image's examples are allowed by default"
