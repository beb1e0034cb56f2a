"""Waiting for a process devhost, its tests or its benchmarks started: a port that accepts
connections, or a devhost whose HTTP endpoint answers."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

from devhost.azurite import answers


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while not answers(host, port, timeout=1.0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")
        time.sleep(0.05)


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Polls ``url`` until it answers 200; raises with the tail of the process's log if the process
    exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer:\n" + log_path.read_text(errors="replace")[-4000:])
        time.sleep(0.2)
