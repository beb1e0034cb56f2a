"""``python -m devhost start`` as a subprocess: Azurite lifecycle, HTTP, a queue trigger, signals."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devhost.azurite import Azurite, answers, default_binary
from shared.adapters.storage_queue_bus import StorageQueueBus
from shared.config import azurite_connection_string
from shared.messaging import OutgoingMessage
from tests.devhost.conftest import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


class Process:
    """A devhost subprocess whose combined output is collected in the background."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "devhost", *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError(f"devhost exited early ({self.popen.returncode}):\n{self.output}")
            try:
                if httpx.get(f"{url}/admin/host/status", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"devhost not ready within {timeout}s:\n{self.output}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.popen.send_signal(signum)
        return self.popen.wait(timeout=timeout)


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    if not default_binary(REPO_ROOT).exists():
        pytest.skip("Azurite not installed (set HERALD_AZURITE_BIN)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERALD_", "HeraldStorage"))}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        HERALD_AZURITE_BIN=str(default_binary(REPO_ROOT)),
        HERALD_DEVHOST_STATE=str(tmp_path / "state"),
        DEVHOST_E2E_MARKER=str(tmp_path / "marker"),
    )
    # The root devhost serves from: Herald's host.json empties the route prefix.
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"http": {"routePrefix": ""}}}))
    yield env


def test_start_runs_its_own_azurite_and_stops_cleanly(tmp_path: Path, cli_env: dict[str, str]) -> None:
    port, blob, queue, table = free_port(), free_port(), free_port(), free_port()
    process = Process(
        ["start", "--app", "tests.devhost.cli_app:app", "--root", str(tmp_path), "--no-provision",
         "--port", str(port), "--blob-port", str(blob), "--queue-port", str(queue), "--table-port", str(table)],
        cli_env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        process.wait_ready(url)
        assert httpx.get(f"{url}/hello").json() == {"hello": "devhost"}
        jwks = httpx.get(f"{url}/devhost/jwks.json").json()
        assert jwks == json.loads((tmp_path / "state" / "jwks.json").read_text())

        async def send() -> None:
            bus = StorageQueueBus(azurite_connection_string("127.0.0.1", blob, queue, table))
            try:
                await bus.send("devhost-cli-e2e", [OutgoingMessage(body=b"it works", message_id="m-1")])
            finally:
                await bus.close()

        asyncio.run(send())
        marker = tmp_path / "marker"
        deadline = time.monotonic() + 10
        while not marker.exists():
            assert time.monotonic() < deadline, process.output
            time.sleep(0.1)
        assert marker.read_bytes() == b"it works"
    finally:
        code = process.stop(signal.SIGTERM)
    output = process.output
    assert code == 0, output
    assert f"Herald is running at {url}" in output
    assert "python -m devhost token" in output
    assert "devhost function=marker trigger=serviceBus" in output and "outcome=ok" in output
    assert (tmp_path / ".local" / "azurite.log").exists()
    assert not answers("127.0.0.1", queue), "devhost left its Azurite running"


def test_start_reuses_a_running_azurite_and_leaves_it_running(
    tmp_path: Path, cli_env: dict[str, str], azurite: Azurite
) -> None:
    port = free_port()
    ports = azurite.ports
    process = Process(
        ["start", "--app", "tests.devhost.cli_app:app", "--root", str(tmp_path), "--no-provision", "--no-azurite",
         "--port", str(port), "--blob-port", str(ports.blob), "--queue-port", str(ports.queue),
         "--table-port", str(ports.table)],
        cli_env,
    )  # fmt: skip
    try:
        process.wait_ready(f"http://127.0.0.1:{port}")
    finally:
        code = process.stop(signal.SIGINT)
    assert code == 0, process.output
    assert "already running, reused" in process.output
    assert azurite.is_running()


def test_no_azurite_without_a_running_one_fails_clearly(tmp_path: Path, cli_env: dict[str, str]) -> None:
    unused = free_port()
    process = Process(
        ["start", "--app", "tests.devhost.cli_app:app", "--root", str(tmp_path), "--no-azurite",
         "--port", str(free_port()), "--blob-port", str(unused), "--queue-port", str(unused),
         "--table-port", str(unused)],
        cli_env,
    )  # fmt: skip
    assert process.popen.wait(timeout=60) == 1
    assert "--no-azurite given but nothing answers" in process.output
