"""A real Azurite for a test session: devhost's own launcher, in memory, on free ports."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from devhost.azurite import Azurite as HostAzurite
from devhost.azurite import default_binary, free_port, free_ports

REPO = Path(__file__).resolve().parents[2]

__all__ = ["Azurite", "azurite_binary", "free_port", "start_azurite"]


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
