"""Starts Azurite from ``node_modules`` (or reuses one already listening) for the local storage account."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from shared.config import azurite_connection_string

log = logging.getLogger("devhost")

REPO_ROOT = Path(__file__).resolve().parent.parent


class AzuriteError(RuntimeError):
    """Azurite could not be started or reached; the message says what to do."""


@dataclass(frozen=True)
class AzuritePorts:
    blob: int = 10000
    queue: int = 10001
    table: int = 10002

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.blob, self.queue, self.table)


def default_binary(root: Path = REPO_ROOT) -> Path:
    """``HERALD_AZURITE_BIN`` or the copy the Makefile installs into ``node_modules``."""
    configured = os.environ.get("HERALD_AZURITE_BIN")
    return Path(configured) if configured else root / "node_modules" / ".bin" / "azurite"


def ports_from_env(environ: dict[str, str] | None = None) -> AzuritePorts:
    env = dict(os.environ) if environ is None else environ
    defaults = AzuritePorts()
    return AzuritePorts(
        blob=int(env.get("HERALD_AZURITE_BLOB_PORT") or defaults.blob),
        queue=int(env.get("HERALD_AZURITE_QUEUE_PORT") or defaults.queue),
        table=int(env.get("HERALD_AZURITE_TABLE_PORT") or defaults.table),
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for Azurites and hosts started side by side in tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports() -> AzuritePorts:
    return AzuritePorts(free_port(), free_port(), free_port())


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Azurite:
    """One Azurite: either a child process devhost owns, or a running instance it merely reuses."""

    def __init__(
        self,
        *,
        binary: Path | None = None,
        location: Path | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        ports: AzuritePorts | None = None,
        in_memory: bool = False,
    ) -> None:
        self.binary = binary or default_binary()
        self.location = location or REPO_ROOT / ".local" / "azurite"
        self.log_path = log_path or REPO_ROOT / ".local" / "azurite.log"
        self.host = host
        self.ports = ports or AzuritePorts()
        self.in_memory = in_memory
        self._process: subprocess.Popen[bytes] | None = None
        self.reused = False

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(self.host, self.ports.blob, self.ports.queue, self.ports.table)

    @property
    def pid(self) -> int | None:
        """The process id of the Azurite devhost started (None when it reuses one)."""
        return self._process.pid if self._process is not None else None

    @property
    def owned(self) -> bool:
        """Whether devhost started this Azurite (and so must stop it)."""
        return self._process is not None

    def command(self) -> list[str]:
        # Azurite refuses --location together with --inMemoryPersistence.
        location = [] if self.in_memory else ["--location", str(self.location)]
        args = [
            str(self.binary),
            *location,
            "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent",
            "--blobHost", self.host, "--blobPort", str(self.ports.blob),
            "--queueHost", self.host, "--queuePort", str(self.ports.queue),
            "--tableHost", self.host, "--tablePort", str(self.ports.table),
        ]  # fmt: skip
        if self.in_memory:
            args.append("--inMemoryPersistence")
        return args

    def is_running(self) -> bool:
        return all(answers(self.host, port) for port in self.ports.as_tuple())

    def require_running(self) -> None:
        """For ``--no-azurite``: fail clearly when nothing listens."""
        missing = [port for port in self.ports.as_tuple() if not answers(self.host, port)]
        if missing:
            raise AzuriteError(
                f"--no-azurite given but nothing answers on {self.host} port(s) {missing}; start Azurite first"
            )
        self.reused = True

    def start(self, timeout: float = 30.0) -> None:
        """Reuse a running Azurite, else spawn one and wait until all three services answer."""
        listening = [port for port in self.ports.as_tuple() if answers(self.host, port)]
        if len(listening) == 3:
            log.info("devhost: reusing the Azurite already listening on %s ports %s", self.host, listening)
            self.reused = True
            return
        if listening:
            raise AzuriteError(
                f"port(s) {listening} on {self.host} are taken but not all Azurite ports answer; "
                "free them or choose others with --blob-port/--queue-port/--table-port"
            )
        if not self.binary.exists():
            raise AzuriteError(f"Azurite not found at {self.binary}; run `make install` or set HERALD_AZURITE_BIN")
        if not self.in_memory:
            self.location.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log_file:
            # A new session keeps a terminal Ctrl+C away from Azurite, so in-flight handlers can
            # finish against storage before devhost stops it.
            self._process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise AzuriteError(f"Azurite exited with code {code} during startup; see {self.log_path}")
            if self.is_running():
                log.info("devhost: Azurite started (pid %d), log in %s", self._process.pid, self.log_path)
                return
            time.sleep(0.1)
        self.stop()
        raise AzuriteError(f"Azurite did not answer within {timeout:.0f}s; see {self.log_path}")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Azurite only if devhost started it; a reused instance keeps running."""
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        log.info("devhost: Azurite stopped")
