"""A real Azurite for a test session: devhost's own launcher, in memory, on free ports."""

from __future__ import annotations

import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from devhost.azurite import Azurite as HostAzurite
from devhost.azurite import default_binary, free_port, free_ports

REPO = Path(__file__).resolve().parents[2]

__all__ = ["Azurite", "azurite_binary", "free_port", "start_azurite", "wait_for_port"]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def azurite_binary() -> str:
    binary = default_binary()
    if not binary.exists():
        raise RuntimeError("Azurite is not installed: run 'make test' (it runs npm ci) or 'npm ci'")
    return str(binary)


@dataclass
class Azurite:
    instance: HostAzurite

    @property
    def blob_port(self) -> int:
        return self.instance.ports.blob

    @property
    def queue_port(self) -> int:
        return self.instance.ports.queue

    @property
    def table_port(self) -> int:
        return self.instance.ports.table

    @property
    def connection_string(self) -> str:
        return self.instance.connection_string

    def stop(self) -> None:
        self.instance.stop()


def start_azurite() -> Azurite:
    log = Path(tempfile.mkdtemp(prefix="herald-azurite-")) / "azurite.log"
    instance = HostAzurite(ports=free_ports(), in_memory=True, log_path=log)
    instance.start()
    return Azurite(instance)
