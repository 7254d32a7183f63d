"""Start a detached OS process that runs one reserved job and outlives whoever started it.

`python -m errands.worker.detached JOB_ID OWNER TOKEN`, with the starter's Settings as JSON on its stdin: the
process runs against the starter's database and allow-list, not whatever its environment would load, and the
database URL (which may hold a password) is never on a command line, where every user of the machine sees it.
The job is already reserved to OWNER/TOKEN (errands.runtime decides who and when); this module only starts
the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from errands.errors import ConfigError
from errands.settings import Settings

# The detached processes this process started and hasn't reaped: a Popen dropped while its process runs warns
# (ResourceWarning, an error under -W error) and leaves a zombie; each call reaps those that have ended.
_started: list[subprocess.Popen[bytes]] = []
_started_lock = threading.Lock()

DETACHED_PROCESS = 0x00000008  # Windows creation flags, spelled out so POSIX can test them
CREATE_NEW_PROCESS_GROUP = 0x00000200


def spawn_command(job_id: int, owner: str, token: str) -> list[str]:
    return [sys.executable, "-m", "errands.worker.detached", str(job_id), owner, token]


def spawn_kwargs(log_file: Path, platform: str = os.name) -> dict[str, Any]:
    """Popen arguments that detach: POSIX a new session; Windows no console and a new process group."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    output = log_file.open("ab")
    common: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": output,
        "stderr": output,
        "close_fds": True,
    }
    if platform == "nt":
        return {**common, "creationflags": DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP}
    return {**common, "start_new_session": True}


def settings_payload(settings: Settings) -> bytes:
    return settings.model_dump_json().encode()


class _Given(Settings):
    """Settings from the values given only: no environment variable, .env or errands.toml adds to them."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from(payload: bytes) -> Settings:
    """The starter's Settings, exactly."""
    try:
        return _Given.model_validate_json(payload)
    except ValueError as exc:
        raise ConfigError("settings", f"the detached process got no valid settings on stdin: {exc}") from None


def start_detached(settings: Settings, job_id: int, owner: str, token: str) -> None:
    """Start the process and hand it the settings. If it dies before reading them, its reservation expires
    and the rescuer takes over, as for a process that dies later."""
    kwargs = spawn_kwargs(settings.log_file)
    kwargs["stdin"] = subprocess.PIPE  # the settings, not the caller's stdin
    try:
        with _started_lock:
            _started[:] = [proc for proc in _started if proc.poll() is None]
            proc = subprocess.Popen(spawn_command(job_id, owner, token), **kwargs)
            _started.append(proc)
    finally:
        kwargs["stdout"].close()
    assert proc.stdin is not None
    try:
        with proc.stdin:
            proc.stdin.write(settings_payload(settings))
    except BrokenPipeError:
        pass
