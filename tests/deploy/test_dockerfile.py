"""The image's Dockerfile and its scripts, checked without a Docker engine: hadolint, ShellCheck, and what the
deployment relies on (stages, a non-root user, the health check, errands as the entrypoint, a context that holds
every file the Dockerfile copies)."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_files import DEPLOY, DOCKERFILE, ROOT, SCRIPTS, run, tool


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (word.upper(), rest.strip())
        for word, _, rest in (line.partition(" ") for line in lines if line and not line.startswith("#"))
    ]


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            found.append([])
        if found:
            found[-1].append(instruction)
    return found


def test_hadolint_finds_nothing() -> None:
    done = run(tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE))
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_would_catch_a_regression(tmp_path: Path) -> None:
    """The check above is live: a root user's `apt-get install` without cleanup is reported."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.11-slim\nRUN apt-get update && apt-get install -y tini\n")
    assert run(tool("hadolint"), "--no-color", str(bad)).returncode != 0


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck_and_are_executable(script: Path) -> None:
    done = run(tool("shellcheck"), "--shell=sh", "--severity=style", str(script))
    assert done.returncode == 0, done.stdout + done.stderr
    assert os.access(script, os.X_OK), f"{script.name} must be executable (git update-index --chmod=+x)"
    assert script.read_text().startswith("#!/bin/sh\n"), "python:3.11-slim has sh; a bash script would not run"


def test_stages_build_the_dashboard_with_node_and_run_on_slim_python() -> None:
    args = dict(rest.partition("=")[::2] for word, rest in instructions() if word == "ARG")
    froms = [stage[0][1] for stage in stages()]
    assert froms[0].startswith("${NODE_IMAGE} AS dashboard")
    assert args["NODE_IMAGE"].startswith("node:20")
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    assert froms[-1].startswith("${PYTHON_IMAGE}"), "the runtime is the slim Python image"
    runtime = "\n".join(f"{word} {rest}" for word, rest in stages()[-1])
    assert "npm" not in runtime and "node" not in runtime.lower().replace("--no-create-home", "")


def test_runtime_runs_errands_as_a_numeric_non_root_user_with_a_health_check() -> None:
    runtime = dict(stages()[-1])
    user = runtime["USER"].split(":")[0]
    assert user.isdigit() and int(user) != 0, "Kubernetes' runAsNonRoot can check only a numeric user"
    assert runtime["ENTRYPOINT"] == '["tini", "--", "errands"]'
    assert runtime["HEALTHCHECK"].endswith('CMD ["errands-healthcheck"]')
    assert runtime["CMD"].startswith('["serve"')


@pytest.mark.parametrize("command", ["serve", "worker", "migrate"])
def test_one_image_runs_serve_worker_and_migrate(command: str) -> None:
    """The three commands the compose file and the manifests give the image are errands commands."""
    done = subprocess.run([tool("errands"), command, "--help"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"errands {command} --help: {done.stderr}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern matching the path or a folder above it decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatch(c, bare) or fnmatch.fnmatch(c, bare.removeprefix("**/")) for c in candidates):
            verdict = not negated
    return verdict


def test_every_file_the_dockerfile_copies_is_in_the_build_context() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = [rest.split()[:-1] for word, rest in instructions() if word == "COPY" and not rest.startswith("--from")]
    sources = [source for group in copied for source in group if not source.startswith("--")]
    assert sources
    for source in sources:
        if "[" in source:  # an optional file by a glob (hatch_build.p[y]): it may be absent
            continue
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not _ignored(source.rstrip("/"), patterns), f"COPY {source}: .dockerignore leaves it out"
    for source in ("web/node_modules", "src/errands/web/static", ".venv", "tests"):
        assert _ignored(source, patterns), f".dockerignore must leave {source} out of the context"
    assert (DEPLOY / "docker" / "healthcheck.sh").exists()


def test_docker_smoke_says_why_it_skips_without_an_engine() -> None:
    if shutil.which("docker") and run("docker", "info").returncode == 0:
        pytest.skip("a Docker engine answers here: `make docker-smoke` builds and runs the image for real")
    done = run("make", "--no-print-directory", "docker-smoke")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\ndocker-smoke: skipped: " in done.stdout, done.stdout
