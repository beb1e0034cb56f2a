"""Orchestration: the in-process ``DevHost`` and the ``devhost start`` run loop with signal handling.

``DevHost`` hosts an already imported ``FunctionApp`` against a storage account (Azurite) and is
what tests use directly; ``run_start`` adds settings loading, Azurite, the issuer key and signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import azure.functions as func
import uvicorn
from azure.data.tables.aio import TableClient
from azure.storage.queue.aio import QueueServiceClient

from devhost.azurite import Azurite, AzuriteError, AzuritePorts, default_binary, free_port
from devhost.durations import parse_timespan
from devhost.functions_index import FunctionIndex, TriggerKind, index_functions
from devhost.http import DEFAULT_MAX_REQUEST_BODY_SIZE, DEFAULT_REQUEST_BODY_TIMEOUT, DevHostHttpApp
from devhost.invocation import Invoker
from devhost.issuer import DEFAULT_ISSUER, KEY_FILE, ensure_issuer_keys
from devhost.queue_properties import QUEUES_FILE, QueueProperties, load_queue_properties
from devhost.servicebus import ListenerOptions, ServiceBusListener, ensure_queues
from devhost.settings import DEFAULT_PORT, follow_port, load_local_settings
from devhost.state import EVENTGRID_KEY_NAME, ensure_system_key
from devhost.timer_lock import LOCKS_TABLE, TimerLock, ensure_locks_table
from devhost.timers import TimerRunner
from shared.adapters.storage_queue_bus import dead_letter_queue_name
from shared.adapters.tables import storage_client_options
from shared.config import DEVELOPMENT_STORAGE, azurite_connection_string

log = logging.getLogger("devhost")

REPO_ROOT = Path(__file__).resolve().parent.parent
STORAGE_SETTING = "HeraldStorage"
# The Functions host's own storage setting; devhost points it at Azurite when it says "development storage".
WEBJOBS_STORAGE_SETTING = "AzureWebJobsStorage"
# Where the app's local sink finds the key devhost's Event Grid webhook requires.
SINK_KEY_SETTING = "HERALD_LOCAL_EVENTGRID_KEY"
ISSUER_KEY_SETTING = "HERALD_LOCAL_ISSUER_KEY_PATH"
BODY_SIZE_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"


class DevHostError(RuntimeError):
    """devhost cannot start; the message tells the developer what to fix."""


def _env_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise DevHostError(f"{name}={raw!r} is not an integer") from exc


def _env_optional_int(environ: Mapping[str, str], name: str) -> int | None:
    return _env_int(environ, name, 0) if environ.get(name) else None


def _host_extension(root: Path, name: str) -> dict[str, Any]:
    """``extensions.<name>`` of host.json in ``root``; empty when the file or section is absent."""
    host_json = root / "host.json"
    if not host_json.is_file():
        return {}
    document = json.loads(host_json.read_text(encoding="utf-8"))
    section = document.get("extensions", {}).get(name, {})
    return section if isinstance(section, dict) else {}


def read_route_prefix(root: Path) -> str:
    """``extensions.http.routePrefix`` from host.json; the Functions default is ``api``."""
    return str(_host_extension(root, "http").get("routePrefix", "api")).strip("/")


@dataclass(frozen=True)
class ServiceBusHostSettings:
    """host.json ``extensions.serviceBus`` as devhost applies it; defaults are the extension's (5.x)."""

    # None: renewed for as long as the handler runs (a negative TimeSpan, .NET's InfiniteTimeSpan).
    max_auto_lock_renewal: timedelta | None = timedelta(minutes=5)
    max_concurrent_calls: int = 16


def read_service_bus_settings(root: Path) -> ServiceBusHostSettings:
    section = _host_extension(root, "serviceBus")
    defaults = ServiceBusHostSettings()
    renewal: timedelta | None = defaults.max_auto_lock_renewal
    raw_renewal = section.get("maxAutoLockRenewalDuration")
    calls = section.get("maxConcurrentCalls", defaults.max_concurrent_calls)
    try:
        if raw_renewal is not None:
            renewal = parse_timespan(str(raw_renewal))
            renewal = None if renewal < timedelta(0) else renewal
    except ValueError as exc:
        raise DevHostError(f"host.json extensions.serviceBus.maxAutoLockRenewalDuration: {exc}") from exc
    if not isinstance(calls, int) or isinstance(calls, bool) or calls < 1:
        raise DevHostError(f"host.json extensions.serviceBus.maxConcurrentCalls {calls!r} must be at least 1")
    return ServiceBusHostSettings(max_auto_lock_renewal=renewal, max_concurrent_calls=calls)


@dataclass(frozen=True)
class DevHostOptions:
    """How a DevHost behaves; ``from_env`` applies the ``HERALD_DEVHOST_*`` variables."""

    host: str = "127.0.0.1"
    port: int = 7071
    # None: the HeraldStorage setting (a connection string) from the environment.
    storage_connection_string: str | None = None
    # Each queue's lock duration, delivery limit and duplicate detection. None: read
    # infra/service-bus-queues.json in function_directory (Service Bus defaults for a queue it lacks).
    queue_properties: Mapping[str, QueueProperties] | None = None
    # Overrides every queue's lock duration (tests, crash drills); None keeps the queues' own.
    lock_seconds: int | None = None
    # None: host.json extensions.serviceBus maxAutoLockRenewalDuration / maxConcurrentCalls.
    max_auto_lock_renewal: timedelta | None = None
    concurrency: int | None = None
    # None: read host.json in function_directory (default "api" when absent).
    route_prefix: str | None = None
    function_directory: Path = REPO_ROOT
    # Call shared.composition.storage.provision(settings) when that module exists.
    provision_app: bool = True
    shutdown_timeout: float = 10.0
    jwks_path: Path | None = None
    issuer: str | None = None
    abandon_backoff_seconds: int = 1
    max_idle_wait: float = 0.5
    # The eventgrid_extension system key the Event Grid webhook requires; None: a random one per
    # DevHost (``DevHost.eventgrid_key``). ``devhost start`` passes the one in its state directory.
    eventgrid_key: str | None = None
    # Bodies over this are refused with 413, as the Functions host does (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT).
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE
    # A request whose body stops arriving for this long is answered 408 instead of held open.
    request_body_timeout: float = DEFAULT_REQUEST_BODY_TIMEOUT
    # Several instances listen on one port (SO_REUSEPORT: the kernel spreads connections over them).
    reuse_port: bool = False
    # Set when several instances share the storage account: timers run under a listener lock with
    # this owner name (devhost/timer_lock.py), so one instance at a time runs each schedule.
    timer_lock_owner: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> DevHostOptions:
        env = os.environ if environ is None else environ
        options = cls(
            lock_seconds=_env_optional_int(env, "HERALD_DEVHOST_LOCK_SECONDS"),
            concurrency=_env_optional_int(env, "HERALD_DEVHOST_CONCURRENCY"),
            jwks_path=Path(env["HERALD_AUTH_JWKS_PATH"]) if env.get("HERALD_AUTH_JWKS_PATH") else None,
            issuer=env.get("HERALD_AUTH_ISSUER") or None,
            max_request_body_size=_env_int(env, BODY_SIZE_LIMIT_SETTING, DEFAULT_MAX_REQUEST_BODY_SIZE),
        )
        return replace(options, **overrides)


KEEP_ALIVE_SECONDS = 130


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: devhost owns shutdown ordering."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and with Nagle
    # on, each response on a kept-alive connection waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DevHostError(
            f"cannot listen on {host}:{port} ({exc.strerror}); is another host running? use --port"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


class DevHost:
    """Hosts one FunctionApp: HTTP + Event Grid on uvicorn, Service Bus queues, timers.

    Usage: ``async with DevHost(app, DevHostOptions(...)) as host: ... host.url ...``.
    """

    def __init__(self, app: func.FunctionRegister, options: DevHostOptions | None = None) -> None:
        self.app = app
        self.options = options or DevHostOptions.from_env()
        self.eventgrid_key = self.options.eventgrid_key or secrets.token_urlsafe(32)
        self.index: FunctionIndex | None = None
        self._invoker = Invoker(str(self.options.function_directory))
        self._service: QueueServiceClient | None = None
        self._listeners: list[ServiceBusListener] = []
        self._queue_properties: dict[str, QueueProperties] = {}
        self._timers: list[TimerRunner] = []
        self._locks_table: TableClient | None = None
        self._server: _Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self._asgi_started = False
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("DevHost is not started")
        return self._port

    @property
    def url(self) -> str:
        host = self.options.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def sync_calls_running(self) -> int:
        return self._invoker.sync_calls_running

    @property
    def storage_connection_string(self) -> str:
        value = self.options.storage_connection_string or os.environ.get(STORAGE_SETTING)
        if not value:
            raise DevHostError(
                f"no storage connection: set {STORAGE_SETTING} or DevHostOptions.storage_connection_string"
            )
        return azurite_connection_string() if value == DEVELOPMENT_STORAGE else value

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Index, provision, then start HTTP, listeners and timers; raises DevHostError on failure."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        # ``%Setting%`` expressions resolve from the app settings, as the Functions host resolves them: this
        # process's environment, then local.settings.json (or the sample) as `devhost start` applies it, so a
        # devhost embedded in another process (tests, benchmarks) indexes the app as `devhost start` does.
        settings = dict(os.environ)
        load_local_settings(self.options.function_directory, settings)
        index = index_functions(self.app, settings)
        self.index = index
        # Read before anything starts, so a declaration Service Bus would reject stops devhost at once.
        host_settings = read_service_bus_settings(self.options.function_directory)
        renewal = self.options.max_auto_lock_renewal
        queues = self._queues(index)
        # devhost polls Azurite with the transport of Herald's own storage clients (shared/adapters/tables.py).
        self._service = QueueServiceClient.from_connection_string(
            self.storage_connection_string, **storage_client_options()
        )
        await self._provision(index)
        await self._start_asgi_lifespan()
        await self._start_http(index)
        for spec in index.of_kind(TriggerKind.SERVICE_BUS):
            assert spec.queue_name is not None
            listener_options = ListenerOptions(
                queue=queues[spec.queue_name],
                max_auto_lock_renewal=host_settings.max_auto_lock_renewal if renewal is None else renewal,
                concurrency=self.options.concurrency or host_settings.max_concurrent_calls,
                abandon_backoff_seconds=self.options.abandon_backoff_seconds,
                max_idle_wait=self.options.max_idle_wait,
            )
            listener = ServiceBusListener(spec, self._service, self._invoker, listener_options)
            listener.start()
            self._listeners.append(listener)
        owner = self.options.timer_lock_owner
        if owner is not None and index.of_kind(TriggerKind.TIMER):
            self._locks_table = TableClient.from_connection_string(
                self.storage_connection_string, LOCKS_TABLE, **storage_client_options()
            )
            await ensure_locks_table(self._locks_table)
        for spec in index.of_kind(TriggerKind.TIMER):
            lock = (
                None if self._locks_table is None or owner is None else TimerLock(self._locks_table, spec.name, owner)
            )
            runner = TimerRunner(spec, self._invoker, lock)
            runner.start()
            self._timers.append(runner)

    def _queues(self, index: FunctionIndex) -> dict[str, QueueProperties]:
        """Each bound queue's properties: declared (infra or options), else Service Bus's defaults."""
        declared = self.options.queue_properties
        source = "DevHostOptions.queue_properties"
        if declared is None:
            path = self.options.function_directory / QUEUES_FILE
            source = str(QUEUES_FILE)
            try:
                declared = load_queue_properties(path) if path.is_file() else {}
            except ValueError as exc:
                raise DevHostError(str(exc)) from exc
        queues: dict[str, QueueProperties] = {}
        for spec in index.of_kind(TriggerKind.SERVICE_BUS):
            name = spec.queue_name
            if name is None or name in queues:
                continue
            properties = declared.get(name)
            if properties is None:
                properties = QueueProperties()
                log.warning(
                    "devhost: queue %s (function %s) is not declared in %s; using Service Bus defaults (%s)",
                    name,
                    spec.name,
                    source,
                    properties.describe(),
                )
            if self.options.lock_seconds is not None:
                properties = replace(properties, lock_duration=timedelta(seconds=self.options.lock_seconds))
            queues[name] = properties
        self._queue_properties = queues
        return queues

    async def _provision(self, index: FunctionIndex) -> None:
        assert self._service is not None
        queues = sorted({spec.queue_name for spec in index.of_kind(TriggerKind.SERVICE_BUS) if spec.queue_name})
        await ensure_queues(
            self._service, [name for queue in queues for name in (queue, dead_letter_queue_name(queue))]
        )
        if not self.options.provision_app:
            return
        if importlib.util.find_spec("shared.composition.storage") is None:
            log.info("devhost: shared.composition.storage not found; Herald tables are not provisioned by devhost")
            return
        module = importlib.import_module("shared.composition.storage")
        provision = getattr(module, "provision", None)
        if provision is None:
            log.warning("devhost: shared.composition.storage has no provision(settings); skipped")
            return
        from shared.config import load_settings

        await provision(load_settings())

    async def _start_asgi_lifespan(self) -> None:
        """Run the ASGI app's startup now rather than on the first request, and its shutdown on stop."""
        if isinstance(self.app, func.AsgiFunctionApp) and not self.app.startup_task_done:
            if not await self.app.middleware.notify_startup():  # type: ignore[no-untyped-call]
                raise DevHostError("the ASGI app's lifespan startup failed; see the log above")
            self.app.startup_task_done = True
            self._asgi_started = True

    async def _start_http(self, index: FunctionIndex) -> None:
        route_prefix = self.options.route_prefix
        if route_prefix is None:
            route_prefix = read_route_prefix(self.options.function_directory)
        asgi = DevHostHttpApp(
            index,
            self._invoker,
            route_prefix=route_prefix,
            jwks_path=self.options.jwks_path,
            issuer=self.options.issuer,
            eventgrid_key=self.eventgrid_key,
            max_request_body_size=self.options.max_request_body_size,
            request_body_timeout=self.options.request_body_timeout,
        )
        sock = _bind(self.options.host, self.options.port, reuse_port=self.options.reuse_port)
        self._port = sock.getsockname()[1]
        # Idle connections stay open 130 s, as the Functions host's Kestrel keeps them: uvicorn's 5 s
        # closed connections that clients' pools were about to reuse.
        config = uvicorn.Config(
            asgi,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
        )
        self._server = _Server(config)
        self._server_task = asyncio.create_task(self._server.serve(sockets=[sock]), name="devhost-http")
        while not self._server.started:
            if self._server_task.done():
                self._server_task.result()
                raise DevHostError("the HTTP server stopped during startup")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop polling and timers, wait (bounded) for in-flight handlers, then stop HTTP."""
        timeout = self.options.shutdown_timeout
        listeners, self._listeners = self._listeners, []
        timers, self._timers = self._timers, []
        await asyncio.gather(*(listener.stop(timeout) for listener in listeners), *(t.stop(timeout) for t in timers))
        if self._server is not None and self._server_task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server_task, timeout=timeout)
            self._server = None
            self._server_task = None
        if self._asgi_started and isinstance(self.app, func.AsgiFunctionApp):
            self._asgi_started = False
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.app.middleware.notify_shutdown(), timeout=timeout)  # type: ignore[no-untyped-call]
            # AsgiFunctionApp.__del__ would otherwise asyncio.run() the shutdown a second time.
            self.app.startup_task_done = False
        if self._service is not None:
            await self._service.close()
            self._service = None
        if self._locks_table is not None:
            await self._locks_table.close()
            self._locks_table = None
        self._invoker.close(wait=False)

    def docs_path(self) -> str:
        """Where the wrapped ASGI app serves its docs (FastAPI's ``docs_url``), for the banner."""
        middleware = getattr(self.app, "middleware", None)
        asgi_app = getattr(middleware, "_app", None)  # AsgiMiddleware keeps the app privately
        docs_url = getattr(asgi_app, "docs_url", None)
        return docs_url if isinstance(docs_url, str) else "/docs"

    def _describe_queue(self, name: str | None) -> str:
        properties = self._queue_properties.get(name or "")
        return f" ({properties.describe()})" if properties else ""

    def describe(self) -> list[str]:
        """One line per hosted function, for the banner."""
        if self.index is None:
            return []
        lines = []
        for spec in self.index.functions:
            detail = {
                TriggerKind.HTTP: f"route {spec.route}",
                TriggerKind.SERVICE_BUS: f"queue {spec.queue_name}{' (batch)' if spec.cardinality_many else ''}"
                + self._describe_queue(spec.queue_name),
                TriggerKind.TIMER: f"schedule {spec.schedule}",
                TriggerKind.EVENT_GRID: f"POST /runtime/webhooks/eventgrid?functionName={spec.name}",
            }[spec.kind]
            lines.append(f"{spec.name} [{spec.kind.value}] {detail}")
        return lines


# --- devhost start -------------------------------------------------------------------------


@dataclass(frozen=True)
class StartConfig:
    """What ``devhost start`` was asked to do (CLI flags; None means env/default)."""

    root: Path = REPO_ROOT
    app_ref: str = "function_app:app"
    host: str | None = None
    port: int | None = None
    ports: AzuritePorts | None = None
    manage_azurite: bool = True
    keep_storage_connection: bool = False
    state_dir: Path | None = None
    provision_app: bool = True
    # How many instances `devhost start` runs (devhost/instances.py supervises them when more than one).
    instances: int = 1
    # Set in an instance the supervisor started: its number, and the pipe it reports readiness on.
    instance: int | None = None
    ready_fd: int | None = None


def load_app(app_ref: str) -> func.FunctionRegister:
    """Import ``module:attribute`` (default ``function_app:app``) after the environment is set."""
    module_name, _, attribute = app_ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise DevHostError(f"cannot import {module_name!r}: no {module_name}.py in {os.getcwd()}") from exc
        raise
    app = getattr(module, attribute or "app", None)
    if not isinstance(app, func.FunctionRegister):
        raise DevHostError(f"{app_ref} is not an azure.functions FunctionApp")
    return app


def _ports(config: StartConfig) -> AzuritePorts:
    if config.ports is not None:
        return config.ports
    env = os.environ
    return AzuritePorts(
        blob=_env_int(env, "HERALD_AZURITE_BLOB_PORT", 10000),
        queue=_env_int(env, "HERALD_AZURITE_QUEUE_PORT", 10001),
        table=_env_int(env, "HERALD_AZURITE_TABLE_PORT", 10002),
    )


def run_start(config: StartConfig) -> int:
    """``python -m devhost start``: returns the process exit code (0 after a signal)."""
    root = config.root.resolve()
    os.chdir(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    loaded = load_local_settings(root)
    if loaded.path is not None:
        log.info(
            "devhost: settings from %s (%d applied, %d already set)",
            loaded.path.name,
            len(loaded.applied),
            len(loaded.kept),
        )
    listen_host = config.host or os.environ.get("HERALD_DEVHOST_HOST") or "127.0.0.1"
    host: DevHost | None = None
    azurite = Azurite(
        binary=default_binary(root),
        location=root / ".local" / "azurite",
        log_path=root / ".local" / "azurite.log",
        host="127.0.0.1",
        ports=_ports(config),
    )
    try:
        if not config.keep_storage_connection:
            if config.manage_azurite:
                azurite.start()
            else:
                azurite.require_running()
            os.environ[STORAGE_SETTING] = azurite.connection_string
            if os.environ.get(WEBJOBS_STORAGE_SETTING) == DEVELOPMENT_STORAGE:
                os.environ[WEBJOBS_STORAGE_SETTING] = azurite.connection_string
        state_dir = config.state_dir or Path(os.environ.get("HERALD_DEVHOST_STATE") or root / ".local" / "devhost")
        jwks_path = ensure_issuer_keys(state_dir)
        _point_app_at_jwks(jwks_path, explicit=config.state_dir is not None)
        # devhost is the issuer: the app signs its own outbound tokens (webhook gateways, Event Grid fakes)
        # with this key, as the managed identity gets them from Entra ID in Azure.
        os.environ[ISSUER_KEY_SETTING] = str((state_dir / KEY_FILE).resolve())
        eventgrid_key = ensure_system_key(EVENTGRID_KEY_NAME, state_dir)
        # The webhook takes no other key, so the app's local sink gets this one, whatever was set.
        os.environ[SINK_KEY_SETTING] = eventgrid_key
        port = config.port if config.port is not None else _env_int(os.environ, "HERALD_DEVHOST_PORT", DEFAULT_PORT)
        supervising = config.instances > 1 and config.instance is None
        if supervising and not port:  # every instance must bind the same port
            port = free_port(listen_host)
        if port:  # 0 (any free port) is known only once bound: the settings keep their values
            followed = follow_port(port, loaded)
            log.debug("devhost: %s follow port %d", ", ".join(followed) or "no settings", port)
        if supervising:
            from devhost.instances import supervise

            return supervise(config, listen_host, port, state_dir)
        app = load_app(config.app_ref)
        issuer = os.environ.get("HERALD_AUTH_ISSUER") or DEFAULT_ISSUER
        options = DevHostOptions.from_env(
            host=listen_host,
            port=port,
            function_directory=root,
            issuer=issuer,
            provision_app=config.provision_app,
            eventgrid_key=eventgrid_key,
            reuse_port=config.instance is not None,
            # Stable per instance and port: a restarted instance takes its own lease back at once.
            timer_lock_owner=None if config.instance is None else f"{listen_host}:{port}/{config.instance}",
        )
        host = DevHost(app, options)
        asyncio.run(_serve(host, azurite, state_dir, config))
    except (DevHostError, AzuriteError) as exc:
        log.error("devhost: %s", exc)
        return 1
    except KeyboardInterrupt:
        log.info("devhost: interrupted during startup")
        return 130
    finally:
        azurite.stop()
    if host is not None and host.sync_calls_running:
        # A synchronous handler ignored shutdown; do not let it keep the process alive.
        log.warning("devhost: synchronous handler(s) still running; exiting anyway")
        logging.shutdown()
        os._exit(0)
    return 0


def _point_app_at_jwks(jwks_path: Path, *, explicit: bool) -> None:
    """The app validates tokens with HERALD_AUTH_JWKS_PATH: default it to devhost's keys (--state-dir wins)."""
    if explicit or not os.environ.get("HERALD_AUTH_JWKS_PATH"):
        os.environ["HERALD_AUTH_JWKS_PATH"] = str(jwks_path)
        return
    configured = Path(os.environ["HERALD_AUTH_JWKS_PATH"]).resolve()
    if configured != jwks_path.resolve():
        log.warning(
            "devhost: HERALD_AUTH_JWKS_PATH=%s is not devhost's %s; `devhost token` tokens will not verify",
            configured,
            jwks_path,
        )


async def _serve(host: DevHost, azurite: Azurite, state_dir: Path, config: StartConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def request_stop(signum: int) -> None:
        if stop.is_set():
            log.warning("devhost: already stopping (waiting up to %.0fs for handlers)", host.options.shutdown_timeout)
        else:
            log.info("devhost: %s received, stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop, signum)
    try:
        await host.start()
        if not config.instance:  # a single devhost, or the first of several
            print(_banner(host, azurite, state_dir), flush=True)
        if config.ready_fd is not None:
            os.write(config.ready_fd, b"ready")
            os.close(config.ready_fd)
        await stop.wait()
    finally:
        await host.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("devhost: stopped")


def _banner(host: DevHost, azurite: Azurite, state_dir: Path) -> str:
    storage = "connection from HeraldStorage (unchanged)"
    if azurite.owned or azurite.reused:
        ports = azurite.ports
        how = "started by devhost" if azurite.owned else "already running, reused"
        storage = f"Azurite {ports.blob}/{ports.queue}/{ports.table} ({how})"
    docs = f"{host.url}{host.docs_path()}"
    functions = "\n".join(f"    {line}" for line in host.describe()) or "    (none)"
    state = "" if state_dir == REPO_ROOT / ".local" / "devhost" else f' --state-dir "{state_dir}"'
    return (
        f"\ndevhost: Herald is running at {host.url}\n"
        f"  API docs  {docs}\n"
        f"  storage   {storage}\n"
        f'  token     python -m devhost token{state} --sub org:991825827 --scope "events.publish events.read"\n'
        f"  webhooks  {host.url}/runtime/webhooks/eventgrid needs the key from "
        f"python -m devhost key{state} {EVENTGRID_KEY_NAME}\n"
        f"  functions\n{functions}\n"
        "  Ctrl+C to stop\n"
    )
