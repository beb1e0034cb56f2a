"""Where a subscription pushes besides a plain webhook, and what a webhook's gateway asks for.

- ``EndpointAuthentication``: a gateway in front of a webhook may demand a bearer token (Herald's own
  identity, for an audience on the endpoint's own host: Event Grid's Entra-secured webhooks) or fixed
  headers (Svix's custom headers). Header values are secrets: sealed at rest, never shown, never
  logged. Signatures are sent in every case: a token proves the caller is Herald, the signature that
  the push is for this subscription.
- ``Destination``: instead of an HTTP endpoint, an Azure Event Grid custom topic or a Service Bus
  queue or topic of the consumer's, which Herald publishes to with its managed identity. Its
  ``address`` is the subscription's ``endpoint``, so the connection guard, the circuit breaker and
  identical-create detection treat it as they treat a webhook URL.

Everything here is checked by form, and against what is Herald's own (``HeraldOwn``); the endpoint
policy (``shared/endpoint_policy.py``) decides about loopback and internal addresses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

MAX_HEADERS = 5
MAX_HEADER_VALUE = 4096
MAX_AUDIENCE = 256
# RFC 9110 token characters: what a header name may hold.
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}$")
# Visible ASCII with inner spaces: no control characters, so no header injection and nothing a
# client library would reject (or worse, quote back in an error message).
_VALUE = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")
# Headers Herald sets itself, or that belong to the connection; a custom header never replaces them.
_RESERVED = frozenset(
    {
        "host",
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "user-agent",
        "proxy-authorization",
        "proxy-connection",
    }
)
_RESERVED_PREFIXES = ("webhook-", "ce-")  # Standard Webhooks and CloudEvents binary-mode headers

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A token for one of these would let whoever receives it act as Herald towards Microsoft's and Azure's
# own services (storage, Service Bus, Key Vault, Event Grid, Graph, Resource Manager …), where Herald's
# identity holds roles. An application ID URI of the consumer's own API is never on these domains:
# Entra ID accepts an https application ID URI only on a domain verified by the tenant.
_MICROSOFT_DOMAINS = (
    "azure.com",
    "azure.net",
    "azure.us",
    "azure.cn",
    "windows.net",
    "microsoft.com",
    "microsoftonline.com",
    "microsoftonline.us",
    "microsoftonline.cn",
    "usgovcloudapi.net",
    "chinacloudapi.cn",
    "cloudapi.de",
    "azure-api.net",
    "azurewebsites.net",
    "azure-devices.net",
    "office.com",
    "office.net",
    "office365.com",
    "sharepoint.com",
    "dynamics.com",
    "powerbi.com",
    "visualstudio.com",
    "live.com",
    "msidentity.com",
)
EVENT_GRID_DOMAINS = ("eventgrid.azure.net", "eventgrid.azure.us", "eventgrid.azure.cn")
EVENT_GRID_PATH = "/api/events"
SERVICE_BUS_DOMAINS = ("servicebus.windows.net", "servicebus.usgovcloudapi.net", "servicebus.chinacloudapi.cn")
# Service Bus: a namespace is 6-50 letters, digits and hyphens, starting with a letter and ending with a
# letter or digit; a queue or topic name is up to 260 letters, digits, '.', '-', '_' and '/', starting
# and ending with a letter or digit.
_NAMESPACE = re.compile(r"^[a-z][a-z0-9-]{4,48}[a-z0-9]$")
_ENTITY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,258}[A-Za-z0-9])?$")


class TargetProblem(ValueError):
    """An authentication or destination Herald will not use: ``field`` and why (``reason``), never
    quoting a header value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


def _within(host: str, domains: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


# --------------------------------------------------------------------------------- authentication


class AuthenticationKind(StrEnum):
    ENTRA_TOKEN = "entraToken"
    HEADERS = "headers"


@dataclass(frozen=True)
class EndpointAuthentication:
    """What a webhook's gateway asks for: a bearer token for ``audience`` (``entraToken``), or up to five
    fixed ``headers`` (name, value), whose values are secrets."""

    kind: AuthenticationKind
    audience: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def entra_token(cls, audience: str) -> EndpointAuthentication:
        check_audience(audience)
        return cls(AuthenticationKind.ENTRA_TOKEN, audience=audience)

    @classmethod
    def custom_headers(cls, headers: Mapping[str, str]) -> EndpointAuthentication:
        return cls(AuthenticationKind.HEADERS, headers=check_headers(headers))

    @property
    def scope(self) -> str:
        """The OAuth 2.0 client-credentials scope of the audience (Entra ID's ``/.default``)."""
        assert self.audience is not None
        return f"{self.audience}/.default"

    @property
    def header_names(self) -> list[str]:
        return [name for name, _ in self.headers]

    @property
    def secret_values(self) -> list[str]:
        return [value for _, value in self.headers]

    def public(self) -> dict[str, object]:
        """As the API shows it: the audience, or the header names only."""
        if self.kind is AuthenticationKind.ENTRA_TOKEN:
            return {"type": self.kind.value, "audience": self.audience}
        return {"type": self.kind.value, "headerNames": self.header_names, "valuesHidden": True}

    def descriptor(self) -> str:
        """What tells two subscriptions' authentication apart without its secrets (identical creates)."""
        if self.kind is AuthenticationKind.ENTRA_TOKEN:
            return f"entraToken:{self.audience}"
        return "headers:" + ",".join(sorted(name.lower() for name in self.header_names))


def check_audience(audience: str) -> str:
    """An application ID URI (``api://…``, or ``https://`` on the consumer's own domain). A bare client
    id, or an audience of Microsoft's or Azure's own services, is refused: Herald would hand a token for
    it to the endpoint. Which audiences a given endpoint may name: ``check_audience_for``."""
    field = "authentication.audience"
    if not audience or len(audience) > MAX_AUDIENCE or any(not 0x21 <= ord(ch) <= 0x7E for ch in audience):
        raise TargetProblem(field, f"must be an application ID URI of at most {MAX_AUDIENCE} characters")
    if _GUID.match(audience):
        raise TargetProblem(field, f"must be an application ID URI such as api://{audience}, not a bare client id")
    if audience.lower().endswith("/.default"):
        raise TargetProblem(field, "names the API without /.default (Herald asks for <audience>/.default)")
    parts = urlsplit(audience)
    if parts.scheme not in ("api", "https") or not parts.netloc:
        raise TargetProblem(field, "must be an application ID URI: api://… or https://…")
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise TargetProblem(field, "must not carry a query, a fragment or credentials")
    host = parts.hostname or ""
    if _within(host, _MICROSOFT_DOMAINS):
        raise TargetProblem(
            field,
            f"names a Microsoft or Azure service ({host}); Herald issues tokens only for the consumer's own APIs",
        )
    return audience


def check_audience_for(audience: str, endpoint: str) -> str:
    """The audience names the endpoint's own host: ``https://<host>[/path]`` or ``api://<host>[/path]``,
    the host exactly, regardless of case. Whoever receives the token is whoever runs the endpoint, so a
    consumer gets tokens only for a host they push to, never for another consumer's API (where Herald's
    identity may hold an app role) nor for an ``api://<guid>`` that names no host at all."""
    field = "authentication.audience"
    host = (urlsplit(endpoint).hostname or "").lower().rstrip(".")
    named = (urlsplit(audience).hostname or "").lower().rstrip(".")
    if not host or named != host:
        raise TargetProblem(
            field,
            f"must name the endPoint's host: https://{host or '<host>'} or api://{host or '<host>'}, optionally "
            "with a path (a token is handed to the endPoint, so it is only issued for the endPoint's own host)",
        )
    return audience


def _audience_key(audience: str) -> str:
    """An audience as Entra ID and Herald's API compare it: scheme and host regardless of case, no trailing
    slash."""
    parts = urlsplit(audience.strip())
    path = parts.path.rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}" if parts.scheme else audience.strip().lower()


def check_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    field = "authentication.headers"
    if not headers:
        raise TargetProblem(field, "must name at least one header")
    if len(headers) > MAX_HEADERS:
        raise TargetProblem(field, f"holds at most {MAX_HEADERS} headers")
    seen: set[str] = set()
    checked: list[tuple[str, str]] = []
    for name, value in headers.items():
        lowered = name.lower()
        if not _TOKEN.match(name):
            raise TargetProblem(field, "hold names of 1 to 64 token characters (letters, digits, !#$%&'*+-.^_`|~)")
        if lowered in _RESERVED or lowered.startswith(_RESERVED_PREFIXES):
            raise TargetProblem(f"{field}.{name}", "is a header Herald sets itself or that belongs to the connection")
        if lowered in seen:
            raise TargetProblem(f"{field}.{name}", "is named twice (header names are case-insensitive)")
        seen.add(lowered)
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE or not _VALUE.match(value):
            # The value is a secret: the message names the header, never the value.
            raise TargetProblem(
                f"{field}.{name}", f"must be 1 to {MAX_HEADER_VALUE} visible ASCII characters (inner spaces allowed)"
            )
        checked.append((name, value))
    return tuple(checked)


# ----------------------------------------------------------------------------------- destinations


class DestinationKind(StrEnum):
    EVENT_GRID_TOPIC = "eventGridTopic"
    SERVICE_BUS_QUEUE = "serviceBusQueue"
    SERVICE_BUS_TOPIC = "serviceBusTopic"


@dataclass(frozen=True)
class Destination:
    """A broker of the consumer's: an Event Grid custom topic (its ``topic_endpoint``) or a Service Bus
    queue or topic (``namespace``, the fully qualified host name, and the entity's ``name``)."""

    kind: DestinationKind
    topic_endpoint: str | None = None
    namespace: str | None = None
    name: str | None = None

    @classmethod
    def event_grid_topic(cls, topic_endpoint: str, *, loopback_allowed: bool = False) -> Destination:
        check_topic_endpoint(topic_endpoint, loopback_allowed=loopback_allowed)
        return cls(DestinationKind.EVENT_GRID_TOPIC, topic_endpoint=topic_endpoint)

    @classmethod
    def service_bus(cls, kind: DestinationKind, namespace: str, name: str) -> Destination:
        return cls(kind, namespace=check_namespace(namespace), name=check_entity(name))

    @property
    def address(self) -> str:
        """The subscription's ``endpoint``: where the guard and the circuit breaker count its health."""
        if self.kind is DestinationKind.EVENT_GRID_TOPIC:
            assert self.topic_endpoint is not None
            return self.topic_endpoint
        return f"sb://{self.namespace}/{self.name}"

    def public(self) -> dict[str, str]:
        """As the API shows it, and as it is stored: the request's own fields."""
        if self.kind is DestinationKind.EVENT_GRID_TOPIC:
            assert self.topic_endpoint is not None
            return {"type": self.kind.value, "topicEndpoint": self.topic_endpoint}
        assert self.namespace is not None and self.name is not None
        return {"type": self.kind.value, "namespace": self.namespace, "name": self.name}

    @classmethod
    def from_public(cls, document: Mapping[str, str]) -> Destination:
        """A stored destination (checked when it was created; read back as it was)."""
        kind = DestinationKind(document["type"])
        if kind is DestinationKind.EVENT_GRID_TOPIC:
            return cls(kind, topic_endpoint=document["topicEndpoint"])
        return cls(kind, namespace=document["namespace"], name=document["name"])


def check_topic_endpoint(url: str, *, loopback_allowed: bool) -> str:
    """An Event Grid custom topic's endpoint, ``https://<topic>.<region>-1.eventgrid.azure.net/api/events``.

    Only Event Grid's own hosts: Herald sends its identity's Event Grid token there, and any other host
    would receive a token that publishes to every topic Herald may publish to. ``loopback_allowed`` (local
    mode) admits a literal loopback host, for local fakes of the publish API."""
    field = "destination.topicEndpoint"
    if len(url) > 2048:
        raise TargetProblem(field, "is longer than 2048 characters")
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.username or parts.password or parts.query or parts.fragment:
        raise TargetProblem(field, "must not carry credentials, a query or a fragment")
    try:
        _ = parts.port
    except ValueError as error:
        raise TargetProblem(field, "has an invalid port") from error
    if parts.path != EVENT_GRID_PATH:
        raise TargetProblem(field, f"must be the topic's publish URL, ending in {EVENT_GRID_PATH}")
    loopback = loopback_allowed and host.lower() in ("localhost", "127.0.0.1", "::1")
    if not loopback and (parts.scheme != "https" or not _within(host, EVENT_GRID_DOMAINS)):
        raise TargetProblem(
            field, "must be an https URL on an Event Grid host (<topic>.<region>-1.eventgrid.azure.net)"
        )
    return url


def check_namespace(namespace: str) -> str:
    field = "destination.namespace"
    host = namespace.lower()
    label, _, domain = host.partition(".")
    if domain not in SERVICE_BUS_DOMAINS or not _NAMESPACE.match(label):
        raise TargetProblem(field, "must be a namespace's fully qualified name, <namespace>.servicebus.windows.net")
    return host


def check_entity(name: str) -> str:
    if not _ENTITY.match(name) or "//" in name:
        raise TargetProblem(
            "destination.name",
            "must be a queue or topic name: up to 260 letters, digits, '.', '-', '_' or '/', "
            "starting and ending with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class HeraldOwn:
    """What is Herald's own, which no subscription may name: the Service Bus namespaces it works in
    (``namespaces``, fully qualified, lower case; its identity is Data Owner of every queue there, one of
    which ingests events), the Event Grid topics it ingests from (``topic_hosts``), and the audiences its
    API accepts tokens for (``audiences``; a token for one is a token for Herald itself)."""

    namespaces: frozenset[str] = frozenset()
    topic_hosts: frozenset[str] = frozenset()
    audiences: frozenset[str] = frozenset()

    @property
    def audience_hosts(self) -> frozenset[str]:
        return frozenset(h for a in self.audiences if (h := (urlsplit(a).hostname or "").rstrip(".")))

    @classmethod
    def of(
        cls,
        *,
        namespaces: Iterable[str | None] = (),
        topics: Iterable[str | None] = (),
        audiences: Iterable[str | None] = (),
    ) -> HeraldOwn:
        """From settings as they are given (unset ones are None); topics as publish URLs or host names."""
        return cls(
            frozenset(n.strip().lower().rstrip(".") for n in namespaces if n and n.strip()),
            frozenset(
                (urlsplit(t.strip()).hostname or t.strip()).lower().rstrip(".") for t in topics if t and t.strip()
            ),
            frozenset(_audience_key(a) for a in audiences if a and a.strip()),
        )

    def check(
        self, endpoint: str, destination: Destination | None, authentication: EndpointAuthentication | None
    ) -> None:
        """Raises ``TargetProblem`` for a destination or an audience of Herald's own, and for an audience
        that is not the endpoint's host (``check_audience_for``)."""
        if destination is not None:
            if destination.namespace is not None and destination.namespace.lower().rstrip(".") in self.namespaces:
                raise TargetProblem(
                    "destination.namespace", "is Herald's own Service Bus namespace; name a namespace of yours"
                )
            host = (urlsplit(destination.topic_endpoint or "").hostname or "").lower().rstrip(".")
            if host and host in self.topic_hosts:
                raise TargetProblem(
                    "destination.topicEndpoint", "is an Event Grid topic of Herald's own; name a topic of yours"
                )
        if authentication is not None and authentication.audience is not None:
            named = (urlsplit(authentication.audience).hostname or "").lower().rstrip(".")
            # Any audience on the host of Herald's own (another path of it included) is Herald's to own.
            if _audience_key(authentication.audience) in self.audiences or (named and named in self.audience_hosts):
                raise TargetProblem(
                    "authentication.audience", "is Herald's own API; Herald issues tokens only for the endPoint's API"
                )
            check_audience_for(authentication.audience, endpoint)


def target_identity(
    endpoint: str, destination: Destination | None, authentication: EndpointAuthentication | None
) -> str:
    """What identical creates compare besides the consumer and the filters: the webhook URL alone, as
    before (so subscriptions stored earlier keep their identity), else the destination's kind and
    address; and the authentication, without its secrets."""
    key = f"{destination.kind.value}:{destination.address}" if destination is not None else endpoint
    return key if authentication is None else f"{key}\x00{authentication.descriptor()}"
