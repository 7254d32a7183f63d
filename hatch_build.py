"""Build the dashboard (web/) into the wheel: `npm ci` when web/node_modules is missing or older than the lock
file, then `npm run build`, which writes src/errands/web/static/ (gitignored; pyproject.toml lists it as a wheel
artifact, so the built files enter the wheel although git ignores them).

Skipped when ERRANDS_SKIP_WEB_BUILD=1, and for editable installs (`pip install -e .`, `make venv`): those serve
src/errands/web/static/ in place, which `make web` fills, so a Python-only change needs no Node. An sdist carries
web/'s sources, so a wheel built from it builds the dashboard too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NEEDS = "Node 20.19+ and npm (set ERRANDS_SKIP_WEB_BUILD=1 to build without the dashboard)"


class DashboardBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        if os.environ.get("ERRANDS_SKIP_WEB_BUILD") == "1":
            self.app.display_info("ERRANDS_SKIP_WEB_BUILD=1: the wheel gets whatever web/static holds (maybe nothing)")
            return
        web = Path(self.root) / "web"
        if not (web / "package.json").is_file():
            raise RuntimeError(f"no dashboard sources at {web}: build from a checkout or an sdist")
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError(f"building the errands wheel builds its dashboard, which needs {NEEDS}")
        if _install_needed(web):
            self.app.display_info("dashboard: npm ci")
            _run([npm, "ci", "--no-audit", "--no-fund"], web)
        self.app.display_info("dashboard: npm run build")
        _run([npm, "run", "build"], web)
        index = Path(self.root) / "src" / "errands" / "web" / "static" / "index.html"
        if not index.is_file():
            raise RuntimeError(f"the dashboard build wrote no {index}")


def _install_needed(web: Path) -> bool:
    """node_modules is missing, or older than the lock file (npm writes node_modules/.package-lock.json)."""
    installed = web / "node_modules" / ".package-lock.json"
    return not installed.is_file() or installed.stat().st_mtime < (web / "package-lock.json").stat().st_mtime


def _run(command: list[str], cwd: Path) -> None:
    try:
        subprocess.run(command, cwd=cwd, check=True)
    except subprocess.CalledProcessError as exc:
        step = " ".join(command[1:])
        raise RuntimeError(f"{step} failed in {cwd} (exit {exc.returncode}); it needs {NEEDS}") from exc
