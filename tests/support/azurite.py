"""Starts a real Azurite (from the repository's node_modules) on free ports for a test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from shared.config import azurite_connection_string

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def azurite_binary() -> str:
    candidate = os.environ.get("HERALD_AZURITE_BIN") or str(REPO / "node_modules" / ".bin" / "azurite")
    if Path(candidate).exists():
        return candidate
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run 'make test' (it runs npm ci) or 'npm ci'")


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(blob=self.blob_port, queue=self.queue_port, table=self.table_port)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_azurite(location: Path | None = None) -> Azurite:
    ports = [free_port() for _ in range(3)]
    command = [
        azurite_binary(),
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
        "--silent",
        "--blobPort",
        str(ports[0]),
        "--queuePort",
        str(ports[1]),
        "--tablePort",
        str(ports[2]),
    ]
    command += ["--location", str(location)] if location else ["--inMemoryPersistence"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    for port in ports:
        wait_for_port(port)
    return Azurite(process, *ports)
