"""Herald's settings, read by name from the environment (app settings in Azure, local.settings.json locally).

Every setting is documented in ``local.settings.sample.json``; a test keeps the two in step.
Connections follow the Functions convention: a setting prefix holds either a connection string
(local) or ``__``-suffixed identity settings (Azure, managed identity, no keys).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

log = logging.getLogger(__name__)

# App Service's syntax for a setting whose value lives in Key Vault. The platform replaces it with the
# secret; when it cannot (no access, no such secret) the setting keeps this literal text.
KEY_VAULT_REFERENCE_PREFIX = "@microsoft.keyvault("


def is_unresolved_key_vault_reference(value: str | None) -> bool:
    """True when a setting still holds the literal Key Vault reference the platform could not resolve."""
    return value is not None and value.strip().lower().startswith(KEY_VAULT_REFERENCE_PREFIX)


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """A secret setting, or None when unset. An unresolved Key Vault reference also reads as unset, so
    the feature that needs the secret stays off instead of using the reference text (guessable from
    public names) as its secret; the error names the setting, never its value."""
    value = env.get(name) or None
    if is_unresolved_key_vault_reference(value):
        log.error(
            "%s holds a Key Vault reference the platform could not resolve; the feature that needs it stays off "
            "(check that the secret exists and the app's identity may read it)",
            name,
        )
        return None
    return value


class Mode(StrEnum):
    LOCAL = "local"
    AZURE = "azure"


class BusKind(StrEnum):
    STORAGE_QUEUE = "storage-queue"
    SERVICE_BUS = "service-bus"


@dataclass(frozen=True)
class Connection:
    """A connection setting prefix resolved to either a connection string or identity settings."""

    prefix: str
    connection_string: str | None
    identity: Mapping[str, str]

    def endpoint(self, suffix: str) -> str | None:
        return self.identity.get(suffix)


def read_connection(prefix: str, environ: Mapping[str, str]) -> Connection:
    marker = f"{prefix}__"
    identity = {key[len(marker) :]: value for key, value in environ.items() if key.startswith(marker) and value}
    return Connection(prefix=prefix, connection_string=environ.get(prefix) or None, identity=identity)


DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"
# Azurite's published development account; not a secret (it is the same on every machine).
AZURITE_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_connection_string(
    host: str = "127.0.0.1", blob: int = 10000, queue: int = 10001, table: int = 10002
) -> str:
    return (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{blob}/devstoreaccount1;"
        f"QueueEndpoint=http://{host}:{queue}/devstoreaccount1;"
        f"TableEndpoint=http://{host}:{table}/devstoreaccount1;"
    )


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    return int(raw) if raw not in (None, "") else default


# What the console asks for locally: every scope a person may hold (Herald still checks each call).
DEFAULT_CONSOLE_SCOPES = "openid events.publish events.read events.subscribe notifications.order admin"


@dataclass(frozen=True)
class Settings:
    mode: Mode
    storage: Connection
    bus: BusKind
    service_bus: Connection
    auth_issuer: str | None
    auth_audience: str
    auth_openid_metadata_url: str | None
    auth_jwks_path: str | None
    event_retention_days: int
    outbox_grace_seconds: int
    public_base_url: str
    webhook_timeout_seconds: float
    retry_schedule_seconds: tuple[int, ...]
    retry_horizon_hours: float
    disable_after_days: float
    delivery_log_days: int
    publish_rate_per_second: float
    secret_key_path: str | None
    secret_key_uri: str | None
    publish_burst: int
    authorization: str
    pdp_url: str | None
    pdp_authority: str | None
    pdp_client_id: str | None
    pdp_client_secret: str | None
    pdp_scope: str | None
    # The identity the Event Grid custom topic publishes as, as set (ingestion checks it is an org: or
    # system: identity; None or anything else: ingestion refuses every event).
    eventgrid_publisher: str | None
    # Locally, devhost's issuer key: Herald signs its own tokens with it for webhook gateways and local
    # Event Grid fakes (shared/adapters/local_issuer.py). devhost sets it; in Azure the managed identity.
    local_issuer_key_path: str | None = None
    # The publish endpoint of the custom Event Grid topic Herald ingests from: no subscription may name it
    # as a destination (shared/subscriptions/targets.py, ``HeraldOwn``).
    eventgrid_topic_endpoint: str | None = None
    # How long an endpoint's circuit breaker first stays open (it doubles each time it opens again).
    circuit_open_seconds: float = 30.0
    # Where a caller's Herald identity comes from: ``token`` (its ``sub``, as devhost issues it) or
    # ``mapped`` (Entra ID: its account, tid + oid, in the identities table; shared/identity/accounts.py).
    auth_identities: str = "token"
    # The console's sign-in (shared/api/console.py): the OpenID authority when not the token issuer,
    # its public client id, and the scopes it asks for (space-separated).
    console_authority: str | None = None
    console_client_id: str = "herald-console"
    console_scopes: str = DEFAULT_CONSOLE_SCOPES

    @property
    def local(self) -> bool:
        return self.mode is Mode.LOCAL

    @property
    def storage_connection_string(self) -> str:
        """The storage connection string (local); identity-based access uses the service URIs instead."""
        value = self.storage.connection_string
        if value is None:
            raise RuntimeError(f"{self.storage.prefix} holds no connection string")
        return azurite_connection_string() if value == DEVELOPMENT_STORAGE else value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    mode = Mode(env.get("HERALD_MODE", Mode.LOCAL.value))
    return Settings(
        mode=mode,
        storage=read_connection("HeraldStorage", env),
        bus=BusKind(env.get("HERALD_BUS", BusKind.STORAGE_QUEUE.value)),
        service_bus=read_connection("ServiceBusConnection", env),
        # Empty with OpenID Connect metadata: the issuer the metadata names.
        auth_issuer=env.get("HERALD_AUTH_ISSUER", "http://127.0.0.1:7071/devhost") or None,
        auth_audience=env.get("HERALD_AUTH_AUDIENCE", "api://herald"),
        auth_openid_metadata_url=env.get("HERALD_AUTH_OPENID_METADATA_URL") or None,
        auth_jwks_path=env.get("HERALD_AUTH_JWKS_PATH") or None,
        auth_identities=(env.get("HERALD_AUTH_IDENTITIES") or "").strip().lower() or "token",
        console_authority=(env.get("HERALD_CONSOLE_AUTHORITY") or "").strip() or None,
        console_client_id=(env.get("HERALD_CONSOLE_CLIENT_ID") or "").strip() or "herald-console",
        console_scopes=" ".join((env.get("HERALD_CONSOLE_SCOPES") or DEFAULT_CONSOLE_SCOPES).split()),
        event_retention_days=_int(env, "HERALD_EVENT_RETENTION_DAYS", 90),
        outbox_grace_seconds=_int(env, "HERALD_OUTBOX_GRACE_SECONDS", 60),
        public_base_url=env.get("HERALD_PUBLIC_BASE_URL") or "http://127.0.0.1:7071",
        webhook_timeout_seconds=float(env.get("HERALD_WEBHOOK_TIMEOUT_SECONDS") or 30),
        retry_schedule_seconds=_schedule(env.get("HERALD_RETRY_SCHEDULE_SECONDS")),
        retry_horizon_hours=float(env.get("HERALD_RETRY_HORIZON_HOURS") or 24),
        disable_after_days=float(env.get("HERALD_DISABLE_AFTER_DAYS") or 5),
        delivery_log_days=_int(env, "HERALD_DELIVERY_LOG_DAYS", 14),
        publish_rate_per_second=float(env.get("HERALD_PUBLISH_RATE_PER_SECOND") or 2000),
        secret_key_path=env.get("HERALD_SECRET_KEY_PATH") or None,
        secret_key_uri=env.get("HERALD_SECRET_KEY_URI") or None,
        publish_burst=_int(env, "HERALD_PUBLISH_BURST", 20000),
        authorization=env.get("HERALD_AUTHORIZATION") or "local",
        pdp_url=env.get("HERALD_PDP_URL") or None,
        pdp_authority=env.get("HERALD_PDP_AUTHORITY") or None,
        pdp_client_id=env.get("HERALD_PDP_CLIENT_ID") or None,
        pdp_client_secret=read_secret(env, "HERALD_PDP_CLIENT_SECRET"),
        pdp_scope=env.get("HERALD_PDP_SCOPE") or None,
        eventgrid_publisher=(env.get("HERALD_EVENTGRID_PUBLISHER") or "").strip() or None,
        local_issuer_key_path=env.get("HERALD_LOCAL_ISSUER_KEY_PATH") or None,
        eventgrid_topic_endpoint=(env.get("HERALD_EVENTGRID_TOPIC_ENDPOINT") or "").strip() or None,
        circuit_open_seconds=float(env.get("HERALD_CIRCUIT_OPEN_SECONDS") or 30),
    )


# Azure Event Grid's schedule: 10 s, 30 s, 1 m, 5 m, 10 m, 30 m, 1 h, 3 h, 6 h, then every 12 h.
DEFAULT_RETRY_SCHEDULE = (10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200)


def _schedule(raw: str | None) -> tuple[int, ...]:
    if not raw:
        return DEFAULT_RETRY_SCHEDULE
    steps = tuple(int(step) for step in raw.replace(" ", "").split(",") if step)
    if not steps or any(step <= 0 for step in steps):
        raise ValueError("HERALD_RETRY_SCHEDULE_SECONDS must list positive seconds, e.g. 10,30,60")
    return steps


@lru_cache(maxsize=1)
def settings() -> Settings:
    return load_settings()
