"""devhost as a separate process on the tests' Azurite, as a developer runs it: for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devhost.readiness import wait_until_serving
from shared.config import Settings
from tests.support.azurite import Azurite, free_port

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DevhostProcess:
    port: int
    env: dict[str, str]
    state: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def devhost_process(
    azurite: Azurite, settings: Settings, state: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[DevhostProcess]:
    """Starts ``python -m devhost start`` on a free port, waits until it answers, stops it with SIGTERM.
    The settings that name devhost's address (the public base URL, the local sink's Event Grid URL)
    follow the port, as for a developer who runs ``--port``."""
    port = free_port()
    env = {
        **os.environ,
        "HERALD_DEVHOST_STATE": str(state),
        "HERALD_AUTH_JWKS_PATH": str(state / "jwks.json"),
        # The same sealing key as the in-process tests sharing this Azurite.
        "HERALD_SECRET_KEY_PATH": str(settings.secret_key_path),
        "PYTHONPATH": str(REPO),
        "HERALD_LOCAL_SINK_REPORT_DELAY_SECONDS": "0.2",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "devhost", "start", "--port", str(port), "--no-azurite"]
    command += ["--blob-port", str(azurite.blob_port), "--queue-port", str(azurite.queue_port)]
    command += ["--table-port", str(azurite.table_port)]
    with (state / "devhost.log").open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/api/v1/health", process, state / "devhost.log", timeout=60)
            yield DevhostProcess(port, env, state)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    assert code == 0, f"devhost exited with {code}:\n" + (state / "devhost.log").read_text()[-3000:]
