"""The process calls that differ between POSIX and Windows: how a child is started and how it is stopped.

The rest of the worker has no platform branch of its own. Each call takes the platform as an argument (the
running one by default), so POSIX tests check the Windows branch too: its Popen arguments, and a stop that is
TerminateProcess there (Popen.terminate, which POSIX runs as a SIGTERM to the process itself).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

POSIX = os.name == "posix"
CREATE_NEW_PROCESS_GROUP = 0x00000200  # Windows' creation flag, spelled out so POSIX can test it


def child_popen_kwargs(platform: str = os.name) -> dict[str, Any]:
    """Spawn arguments: children get their own process group, so a kill reaches whatever the job started."""
    if platform == "posix":
        return {"start_new_session": True}
    return {"creationflags": CREATE_NEW_PROCESS_GROUP}


def stop_child(proc: subprocess.Popen[bytes], force: bool, platform: str = os.name) -> None:
    """POSIX: SIGTERM (SIGKILL if `force`) to the child's whole process group; Windows: TerminateProcess,
    which can't be caught anyway. A child already gone is no error."""
    try:
        if platform == "posix":
            os.killpg(proc.pid, signal.SIGKILL if force else signal.SIGTERM)
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        pass
