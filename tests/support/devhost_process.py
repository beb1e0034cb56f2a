"""devhost as a separate process on the tests' Azurite, as a developer runs it: for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from devhost.issuer import issue_token, split_scopes
from devhost.launch import start_devhost_process
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
    azurite: Azurite,
    settings: Settings,
    state: Path,
    extra_env: Mapping[str, str] | None = None,
    *,
    instances: int = 1,
) -> Iterator[DevhostProcess]:
    """Starts ``python -m devhost start`` on a free port, waits until it answers, stops it with SIGTERM.
    The settings that name devhost's address (the public base URL, the local sink's Event Grid URL)
    follow the port, as for a developer who runs ``--port``. ``instances`` > 1 runs
    ``--instances``: that many Functions instances behind the port, returned once all of them serve."""
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
    log_path = state / "devhost.log"
    process = start_devhost_process(port, azurite.instance.ports, env, log_path, timeout=60, instances=instances)
    try:
        yield DevhostProcess(port, env, state)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0, f"devhost exited with {code}:\n" + log_path.read_text()[-3000:]


# The settings of the devhost tests/e2e shares: every failed push is retried after one second, so tests that
# fail pushes on purpose see the retries within seconds; the others never fail one.
E2E_SETTINGS = {"HERALD_RETRY_SCHEDULE_SECONDS": "1"}


class SharedDevhost:
    """One devhost process at a time for many test modules: it keeps running while the modules that
    follow ask for the same extra settings, and is restarted only for a module that asks for others.
    Never two at once: two devhosts on one Azurite would take each other's queue messages."""

    def __init__(self, azurite: Azurite, settings: Settings, states: Callable[[], Path]) -> None:
        self._azurite, self._settings, self._states = azurite, settings, states
        self._running: tuple[dict[str, str], DevhostProcess, AbstractContextManager[DevhostProcess]] | None = None

    def use(self, extra_env: Mapping[str, str] | None = None) -> DevhostProcess:
        wanted = dict(extra_env or {})
        if self._running is not None:
            env, process, _ = self._running
            if env == wanted:
                return process
            self.stop()
        context = devhost_process(self._azurite, self._settings, self._states(), wanted)
        process = context.__enter__()
        self._running = (wanted, process, context)
        return process

    def stop(self) -> None:
        if self._running is not None:
            _, _, context = self._running
            self._running = None
            context.__exit__(None, None, None)


def devhost_cli(env: Mapping[str, str], *args: str) -> str:
    """What ``python -m devhost <args>`` prints, run as a developer runs it beside the devhost process."""
    command = [sys.executable, "-m", "devhost", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.strip()


def devhost_token(env: Mapping[str, str], sub: str, scopes: str) -> str:
    """The token ``python -m devhost token --sub <sub> --scope <scopes>`` prints with ``env``, made in this
    process: a process of its own costs a second or more each time (the README tests run the command itself)."""
    return issue_token(
        sub,
        split_scopes([scopes]),
        audience=env.get("HERALD_AUTH_AUDIENCE") or None,
        issuer=env.get("HERALD_AUTH_ISSUER") or None,
        state_dir=env.get("HERALD_DEVHOST_STATE") or None,
    )


def open_resource(port: int, env: Mapping[str, str], resource: str) -> None:
    """An administrator lets every identity publish, read and subscribe on the resource."""
    admin = devhost_token(env, "system:e2e-admin", "admin")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/admin/policies/{resource}",
        data=json.dumps({"publishers": ["*"], "owners": ["*"]}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def shell_blocks(readme: Path) -> list[str]:
    """The ``sh`` blocks of a README, but those that run make."""
    text = readme.read_text()
    return [block for block in re.findall(r"```sh\n(.*?)```", text, re.S) if "make " not in block]


def run_as_written(block: str, env: Mapping[str, str], replacements: Mapping[str, str], *, timeout: float) -> str:
    """Runs a README's shell block with bash (``set -euo pipefail``) in the repository, with only
    ``replacements`` made and ``.venv/bin/python`` read as this interpreter; returns what it printed."""
    for written, actual in {".venv/bin/python": sys.executable, **replacements}.items():
        block = block.replace(written, actual)
    script = "set -euo pipefail\n" + block
    completed = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout
