"""A real Azurite per test session (in memory, free ports) and helpers to run a DevHost against it."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from devhost.azurite import Azurite, AzuritePorts, default_binary  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    binary = default_binary(REPO_ROOT)
    if not binary.exists():
        pytest.skip(f"Azurite not installed at {binary} (run `make install` or set HERALD_AZURITE_BIN)")
    work = tmp_path_factory.mktemp("azurite")
    instance = Azurite(
        binary=binary,
        location=work / "data",
        log_path=work / "azurite.log",
        ports=AzuritePorts(blob=free_port(), queue=free_port(), table=free_port()),
        in_memory=True,
    )
    instance.start(timeout=60)
    yield instance
    instance.stop()
