"""devhost as a process of its own, the way its tests and benchmarks start it: ``python -m devhost
start --no-azurite`` on a port they choose, against an Azurite that already runs, its output in a log
file, returned once it answers."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from devhost.azurite import REPO_ROOT, AzuritePorts
from devhost.readiness import wait_until_serving


def start_devhost_process(
    port: int,
    azurite: AzuritePorts,
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout: float,
    ready_path: str = "/api/v1/health",
    append_log: bool = False,
) -> subprocess.Popen[bytes]:
    """Starts devhost on ``port`` with ``env`` as its whole environment, and waits until ``ready_path``
    answers 200. If devhost exits first or ``timeout`` passes, it is killed and the error carries the
    log's tail; once started, the caller stops it."""
    command = [
        sys.executable,
        "-m",
        "devhost",
        "start",
        "--port",
        str(port),
        "--no-azurite",
        "--blob-port",
        str(azurite.blob),
        "--queue-port",
        str(azurite.queue),
        "--table-port",
        str(azurite.table),
    ]
    with log_path.open("ab" if append_log else "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}{ready_path}", process, log_path, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process
