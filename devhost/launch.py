"""devhost as a process of its own, the way its tests and benchmarks start it: ``python -m devhost
start --no-azurite`` on a port they choose, against an Azurite that already runs, its output in a log
file, returned once it answers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from devhost.azurite import REPO_ROOT, AzuritePorts
from devhost.readiness import wait_until_serving

# What the supervisor logs once every instance serves (devhost/instances.py).
ALL_INSTANCES_SERVE = b" instances serve http://"


def _wait_for_all_instances(process: subprocess.Popen[bytes], log_path: Path, offset: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with log_path.open("rb") as log:
            log.seek(offset)
            if ALL_INSTANCES_SERVE in log.read():
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                "devhost's instances did not all start:\n" + log_path.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.1)


def start_devhost_process(
    port: int,
    azurite: AzuritePorts,
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout: float,
    ready_path: str = "/api/v1/health",
    append_log: bool = False,
    instances: int = 1,
) -> subprocess.Popen[bytes]:
    """Starts devhost on ``port`` with ``env`` as its whole environment, and waits until ``ready_path``
    answers 200 (with several ``instances``, until every one of them serves). If devhost exits first or
    ``timeout`` passes, it is killed and the error carries the log's tail; once started, the caller
    stops it (SIGTERM to the returned process stops every instance)."""
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
    if instances > 1:
        command += ["--instances", str(instances)]
    start_offset = log_path.stat().st_size if append_log and log_path.exists() else 0
    with log_path.open("ab" if append_log else "wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}{ready_path}", process, log_path, timeout)
        if instances > 1:
            _wait_for_all_instances(process, log_path, start_offset, timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process
