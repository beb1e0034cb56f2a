"""The benchmark environment: Azurite and devhost processes on free ports, tokens, machine facts, statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from azure.data.tables.aio import TableClient, TableServiceClient

from devhost.azurite import Azurite as HostAzurite
from devhost.azurite import free_port, free_ports
from devhost.launch import start_devhost_process
from devhost.readiness import wait_for_port
from shared.adapters.tables import storage_client_options

REPO = Path(__file__).resolve().parents[1]
STATE = Path(tempfile.gettempdir()) / f"herald-bench-{os.getpid()}"


@dataclass
class Azurite:
    """devhost's Azurite, in memory on free ports, with the CPU it spends."""

    instance: HostAzurite

    @property
    def connection_string(self) -> str:
        return self.instance.connection_string

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.instance.pid) if self.instance.pid is not None else 0.0

    def stop(self) -> None:
        self.instance.stop()


def start_azurite(*, in_memory: bool = False) -> Azurite:
    """A fresh Azurite, so every scenario starts from empty tables and queues.

    On disk by default, in a directory of its own, as ``make run`` keeps it: in memory, Azurite stores
    each queue message as an extent of its own and its queue garbage collector, once a minute, removes
    the deleted ones with a scan of all extents each, which froze the whole process (tables too) for
    7-9 s after a minute at 20 events/s. On disk, messages share extent files. The scenarios that seed
    hundreds of thousands of entities and send few messages (ingest, matching, query) keep memory,
    where Azurite does not write every table out to disk every 5 s."""
    STATE.mkdir(parents=True, exist_ok=True)
    name = f"azurite-{time.monotonic_ns()}"
    location = STATE / name
    if location.exists():
        shutil.rmtree(location)
    instance = HostAzurite(ports=free_ports(), in_memory=in_memory, location=location, log_path=STATE / f"{name}.log")
    instance.start()
    return Azurite(instance)


@contextlib.contextmanager
def azurite(*, in_memory: bool = False) -> Iterator[Azurite]:
    instance = start_azurite(in_memory=in_memory)
    try:
        yield instance
    finally:
        instance.stop()
        shutil.rmtree(instance.instance.location, ignore_errors=True)


async def new_table(connection: str, table: str) -> tuple[TableServiceClient, TableClient]:
    """A table service on ``connection``, with the client options Herald's adapters use, and a new
    ``table`` in it."""
    service = TableServiceClient.from_connection_string(connection, **storage_client_options())
    await service.create_table(table)
    return service, service.get_table_client(table)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (Azurite runs node under a shell wrapper)."""
    try:
        process = psutil.Process(pid)
        total = sum(process.cpu_times()[:2])
        for child in process.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += sum(child.cpu_times()[:2])
        return float(total)
    except psutil.Error:
        return 0.0


@dataclass
class DevhostProcess:
    process: subprocess.Popen[bytes]
    port: int
    state: Path
    env: dict[str, str]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def token(self, scopes: Sequence[str], sub: str = "org:991825827") -> str:
        from devhost.issuer import issue_token

        return issue_token(sub, list(scopes), state_dir=self.state, ttl=7200)

    def headers(self, *scopes: str, content_type: str = "application/json") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(scopes)}", "Content-Type": content_type}

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)

    def open_resource(self, resource: str) -> None:
        open_resource(self.url, self.token(["admin"], sub="system:bench-admin"), resource)

    def stop(self) -> None:
        # A scenario's figures are taken by now: devhost gets a short grace, not the time its in-flight
        # handlers would need (a hanging endpoint holds one for the whole webhook timeout).
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=1)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_devhost(store: Azurite, extra_env: dict[str, str] | None = None, *, instances: int = 1) -> DevhostProcess:
    """devhost as its own process on the given Azurite (the load generator does not share its event loop);
    ``instances`` > 1 runs ``devhost start --instances`` (its CPU is the supervisor's and the instances')."""
    port = free_port()
    state = STATE / f"devhost-{port}"
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HERALD_DEVHOST_STATE": str(state),
        "HERALD_AUTH_JWKS_PATH": str(state / "jwks.json"),
        "HERALD_SECRET_KEY_PATH": str(state / "secret.key"),
        "PYTHONPATH": str(REPO),
        "HERALD_LOCAL_EVENTGRID_URL": f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid",
        "HERALD_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "HERALD_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    log_path = state / "devhost.log"
    process = start_devhost_process(
        port, store.instance.ports, env, log_path, timeout=90, ready_path="/admin/host/status", instances=instances
    )
    return DevhostProcess(process, port, state, env, log_path)


def open_resource(base_url: str, admin_token: str, resource: str) -> None:
    """Lets every identity publish, read and subscribe on the resource (a policy, where the app has them)."""
    request = urllib.request.Request(
        f"{base_url}/api/v1/admin/policies/{resource}",
        data=json.dumps({"publishers": ["*"], "owners": ["*"]}).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {admin_token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        if error.code not in (404, 405):  # an app without resource policies lets everyone in
            raise


@contextlib.contextmanager
def devhost(store: Azurite, extra_env: dict[str, str] | None = None, *, instances: int = 1) -> Iterator[DevhostProcess]:
    host = start_devhost(store, extra_env, instances=instances)
    try:
        yield host
    finally:
        host.stop()


@dataclass
class ReceiverProcess:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.url}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def slow_down(self, seconds: float) -> None:
        """``/slow/<n>`` answers after ``seconds`` from now on."""
        request = urllib.request.Request(f"{self.url}/slowdown?seconds={seconds}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.process.pid)


@contextlib.contextmanager
def receiver() -> Iterator[ReceiverProcess]:
    """Webhook receivers (aiohttp) in a process of their own."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.receiver", "--port", str(port)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        wait_for_port(port)
        yield ReceiverProcess(process, port)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_POOL = contextlib.ExitStack()
_POOLED: dict[str, Any] = {}


@contextlib.contextmanager
def webhook_rig() -> Iterator[tuple[Azurite, ReceiverProcess, DevhostProcess]]:
    """Azurite, the receivers and devhost for the delivery and isolation scenarios: started by the first
    of them and kept for the next (each uses resources and endpoint paths of its own), which saves a
    few seconds of the quick run. ``close_pool`` stops them."""
    rig = _POOLED.get("webhooks")
    if rig is None:
        store = _POOL.enter_context(azurite())
        sink = _POOL.enter_context(receiver())
        rig = _POOLED["webhooks"] = (store, sink, _POOL.enter_context(devhost(store)))
    yield rig


def close_pool() -> None:
    _POOL.close()
    _POOLED.clear()


async def closed_loop(
    session: aiohttp.ClientSession, clients: int, seconds: float, request: Callable[[int, int], Awaitable[None]]
) -> dict[str, Any]:
    """``clients`` clients, each sending ``request(client, n)`` (its n-th) back to back for ``seconds``:
    requests/s, count, p50/p99 and the seconds measured."""
    done = 0
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal done
        n = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            await request(number, n)
            latencies.append(time.perf_counter() - started)
            done += 1
            n += 1

    began = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - began
    return {
        "per_s": done / elapsed,
        "requests": done,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "seconds": elapsed,
    }


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return float(ordered[rank])


def percentiles_ms(prefix: str, samples: Sequence[float]) -> dict[str, float]:
    """``{prefix}_p50_ms`` and ``{prefix}_p99_ms`` of samples taken in seconds."""
    return {f"{prefix}_p{p}_ms": percentile(samples, p) * 1000 for p in (50, 99)}


def machine() -> dict[str, Any]:
    import aiohttp
    import azure.data.tables

    versions = {
        "python": platform.python_version(),
        "azure-data-tables": azure.data.tables.__version__,
        "aiohttp": aiohttp.__version__,
    }
    with contextlib.suppress(OSError, ValueError):
        package = json.loads((REPO / "node_modules" / "azurite" / "package.json").read_text())
        versions["azurite"] = package["version"]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        versions["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "platform": platform.platform(),
        "versions": versions,
    }


@dataclass
class Result:
    """One scenario's figures: a headline figure, its baseline, the ratio and the target."""

    name: str
    title: str
    figure: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def p99_growth_result(
    name: str, title: str, figure: str, baseline: str, sizes: list[dict[str, Any]], samples: int
) -> Result:
    """A scaling scenario's result: its target is Herald's p99 growing at most 1.5 times from the
    smallest size measured (``sizes[0]``) to the largest (``sizes[-1]``)."""
    ratio = sizes[-1]["herald_p99_ms"] / sizes[0]["herald_p99_ms"]
    return Result(
        name=name,
        title=title,
        figure=figure,
        baseline=baseline,
        ratio=ratio,
        target="p99 ratio ≤ 1.5",
        met=ratio <= 1.5,
        details={"sizes": sizes, "samples": samples},
    )


async def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(interval)
    return False


@contextlib.contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With HERALD_BENCH_PROFILE=<dir>, py-spy samples the process (collapsed stacks) while the block runs."""
    directory = os.environ.get("HERALD_BENCH_PROFILE")
    spy = Path(sys.executable).with_name("py-spy")
    if not directory or not spy.exists():
        yield
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    output = Path(directory) / f"{name}.txt"
    command = [
        str(spy),
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--rate",
        "200",
        "--nonblocking",
        "-o",
        str(output),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
