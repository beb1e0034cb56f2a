"""Processes for crash tests: Azurite persisted on disk (restartable on the same ports), devhost as a
killable subprocess, and a webhook receiver in its own process that appends what it gets to a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devhost.azurite import Azurite as HostAzurite
from devhost.azurite import AzuritePorts, free_ports
from devhost.launch import start_devhost_process
from devhost.readiness import wait_for_port
from shared.config import azurite_connection_string
from tests.support.azurite import azurite_binary, free_port

REPO = Path(__file__).resolve().parents[2]


def _wait_closed(port: int, timeout: float = 10.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.05)


@dataclass
class DiskAzurite:
    """Azurite with ``--location`` on disk; ``restart`` stops it gracefully and starts it on the same ports."""

    location: Path
    ports: AzuritePorts = field(default_factory=free_ports)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0

    @property
    def connection_string(self) -> str:
        return azurite_connection_string(blob=self.ports.blob, queue=self.ports.queue, table=self.ports.table)

    def start(self) -> None:
        # devhost's command line for it; started here, to restart on the same ports and stop with any signal.
        command = HostAzurite(binary=Path(azurite_binary()), location=self.location, ports=self.ports).command()
        log = (self.location.parent / f"{self.location.name}.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for port in self.ports.as_tuple():
            wait_for_port(port, timeout=60)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        for port in self.ports.as_tuple():
            _wait_closed(port)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()
        self.restarts += 1


@dataclass
class DevhostProcess:
    """``python -m devhost start --no-azurite`` on a fixed port, killable with SIGKILL and restartable."""

    azurite: DiskAzurite
    state: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HERALD_DEVHOST_STATE": str(self.state),
            "HERALD_AUTH_JWKS_PATH": str(self.state / "jwks.json"),
            "HERALD_DEVHOST_LOCK_SECONDS": "5",
            "HERALD_OUTBOX_GRACE_SECONDS": "2",
            "HERALD_RETRY_SCHEDULE_SECONDS": "1,2,3,5",
            "HERALD_WEBHOOK_TIMEOUT_SECONDS": "10",
            **self.extra_env,
        }

    def start(self, timeout: float = 90.0) -> None:
        log_path = self.state / "devhost.log"
        self.process = start_devhost_process(
            self.port, self.azurite.ports, self.env(), log_path, timeout=timeout, append_log=True
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, handlers cut mid-flight."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1
        _wait_closed(self.port)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def token(self, scopes: str, sub: str = "org:991825827") -> str:
        completed = subprocess.run(
            [sys.executable, "-m", "devhost", "token", "--sub", sub, "--scope", scopes, "--ttl", "7200"],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return completed.stdout.strip()


RECEIVER_CODE = r"""
import http.server, json, sys, threading, time
path, port = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
out = open(path, 'a', buffering=1)
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        try:
            event = json.loads(body)
            line = json.dumps([self.path, event.get('id'), event.get('type'), self.headers.get('webhook-id'), time.time()])
        except ValueError:
            line = json.dumps([self.path, None, 'unparsable', None, time.time()])
        with lock:
            out.write(line + '\n')
        self.send_response(200); self.send_header('content-length', '0'); self.end_headers()
    def do_OPTIONS(self):
        self.send_response(405); self.send_header('content-length', '0'); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.daemon_threads = True
http.server.ThreadingHTTPServer(('127.0.0.1', port), H).serve_forever()
"""


@dataclass
class ReceiverProcess:
    """A webhook receiver in its own process: one JSON line per POST, ``[path, id, type, webhook-id, epoch s]``."""

    record: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", RECEIVER_CODE, str(self.record), str(self.port)])
        wait_for_port(self.port)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def lines(self) -> list[list[str | None]]:
        if not self.record.exists():
            return []
        rows = []
        for line in self.record.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:  # a line being written
                continue
        return rows

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
