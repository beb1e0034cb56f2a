"""``devhost start --instances N``: N devhost processes on one Azurite, as N Functions instances.

In Azure (Flex Consumption) several instances of the app consume the same queues and serve HTTP
behind one front end. Locally the supervisor (the ``devhost start`` process) prepares what all
share (settings, Azurite, the issuer and system keys, the port), then starts each instance as
``python -m devhost start --instance K``: every instance serves HTTP on the same port (SO_REUSEPORT;
the kernel spreads connections over them, as Azure's front end spreads requests), polls every queue,
and runs timers under the listener lock (devhost/timer_lock.py). The first instance starts alone and
provisions storage; the others follow once it is up. An instance that exits stops them all;
SIGINT/SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

from devhost.host import DevHostError, StartConfig

log = logging.getLogger("devhost")

START_TIMEOUT_SECONDS = 120.0
# How long instances get to stop after SIGTERM (their own grace for handlers is 10 s).
STOP_TIMEOUT_SECONDS = 20.0
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor dies, even by SIGKILL (Linux only)."""
    name = ctypes.util.find_library("c")
    if name and sys.platform.startswith("linux"):
        ctypes.CDLL(name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def instance_command(
    config: StartConfig, host: str, port: int, state_dir: Path, instance: int, ready_fd: int
) -> list[str]:
    command = [
        sys.executable, "-m", "devhost", "start",
        "--instance", str(instance), "--instances", str(config.instances), "--ready-fd", str(ready_fd),
        # The supervisor set HeraldStorage to its Azurite; instances use it as it is.
        "--storage-connection",
        "--host", host, "--port", str(port),
        "--app", config.app_ref, "--root", str(config.root),
    ]  # fmt: skip
    if config.state_dir is not None:  # else each instance finds the same one the supervisor did
        command += ["--state-dir", str(state_dir)]
    if instance > 0 or not config.provision_app:
        command.append("--no-provision")
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        command.append("--verbose")
    return command


class _Instance:
    def __init__(self, number: int, process: subprocess.Popen[bytes], ready: int) -> None:
        self.number = number
        self.process = process
        self.ready = ready  # the read end of its readiness pipe

    def wait_ready(self, deadline: float, stopping: list[int]) -> bool:
        """True once the instance reports it serves; False if it exits, time runs out or a signal came."""
        while time.monotonic() < deadline and not stopping:
            readable, _, _ = select.select([self.ready], [], [], 0.2)
            if readable:
                return os.read(self.ready, 16) == b"ready"
            if self.process.poll() is not None:
                return False
        return False


def supervise(config: StartConfig, host: str, port: int, state_dir: Path) -> int:
    """Runs ``config.instances`` instances until a signal (exit 0) or until one exits (exit 1)."""
    if config.instances < 1:
        raise DevHostError(f"--instances {config.instances} must be at least 1")
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping:
            log.info("devhost: %s received, stopping %d instances", signal.Signals(signum).name, config.instances)
        stopping.append(signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    instances: list[_Instance] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        # The first instance provisions storage alone; the others start once it serves.
        for wave in ([0], list(range(1, config.instances))):
            started = [_start(config, host, port, state_dir, number) for number in wave]
            instances.extend(started)
            for instance in started:
                if not instance.wait_ready(deadline, stopping):
                    if stopping:
                        return 0
                    log.error("devhost: instance %d did not start; stopping", instance.number)
                    return 1
        log.info(
            "devhost: %d instances serve http://%s:%d (pids %s)",
            len(instances),
            host,
            port,
            ", ".join(str(i.process.pid) for i in instances),
        )
        while not stopping:
            for instance in instances:
                code = instance.process.poll()
                if code is not None:
                    log.error(
                        "devhost: instance %d (pid %d) exited with %d; stopping",
                        instance.number,
                        instance.process.pid,
                        code,
                    )
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop(instances)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _start(config: StartConfig, host: str, port: int, state_dir: Path, number: int) -> _Instance:
    ready, ready_to_write = os.pipe()
    try:
        process = subprocess.Popen(
            instance_command(config, host, port, state_dir, number, ready_to_write),
            pass_fds=(ready_to_write,),
            stdin=subprocess.DEVNULL,
            # A session of its own: a terminal's Ctrl+C reaches the supervisor only, which stops the
            # instances in order; they die with it if it is killed.
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    finally:
        os.close(ready_to_write)
    return _Instance(number, process, ready)


def _stop(instances: list[_Instance]) -> None:
    for instance in instances:
        if instance.process.poll() is None:
            instance.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for instance in instances:
        try:
            instance.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("devhost: instance %d did not stop; killing it", instance.number)
            instance.process.kill()
            instance.process.wait()
        with contextlib.suppress(OSError):
            os.close(instance.ready)
