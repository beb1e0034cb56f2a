"""Builds what pushes need besides the webhook client: Herald's own identity's tokens (for webhook
gateways that demand one) and the publishers of broker destinations (Event Grid topics, Service Bus
queues and topics); see shared/subscriptions/targets.py.

In Azure all of them are the function app's managed identity (the one its storage connection names,
as for Key Vault). Locally the tokens and the Event Grid client use devhost's issuer (against local
fakes of the publish API); Service Bus has no local form, so a local Herald has no Service Bus
publisher (its pushes fail, saying so, and tests reach the adapter through the SDK's sender
interface). A local Herald never asks an Azure credential for a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential

from shared.config import Connection, Settings
from shared.subscriptions.ports import DestinationClient, TokenSource
from shared.subscriptions.targets import DestinationKind, HeraldOwn


@dataclass
class PushTargets:
    tokens: TokenSource | None = None
    destinations: Mapping[DestinationKind, DestinationClient] = field(default_factory=dict)
    # Closed last, after what uses them (a list: some are made on first use).
    credentials: list[AsyncTokenCredential] = field(default_factory=list)

    async def close(self) -> None:
        for client in {id(client): client for client in self.destinations.values()}.values():
            await client.close()
        for credential in self.credentials:
            await credential.close()


def build_push_targets(config: Settings) -> PushTargets:
    from shared.adapters.entra_tokens import CredentialTokens
    from shared.adapters.eventgrid_destination import EventGridTopics

    targets = PushTargets()
    identity: AsyncTokenCredential | None = None
    if not config.local:
        from azure.servicebus.aio import ServiceBusClient

        from shared.adapters.identity import credential_for
        from shared.adapters.servicebus_destination import ServiceBusDestinations

        identity = credential_for(config.storage)  # the app's managed identity
        managed = identity
        bus = ServiceBusDestinations(
            lambda namespace: ServiceBusClient(fully_qualified_namespace=namespace, credential=managed)
        )
        targets.destinations = {DestinationKind.SERVICE_BUS_QUEUE: bus, DestinationKind.SERVICE_BUS_TOPIC: bus}
    elif config.local_issuer_key_path and config.auth_issuer:
        from shared.adapters.local_issuer import LocalIssuerCredential

        identity = LocalIssuerCredential(Path(config.local_issuer_key_path), config.auth_issuer)
    # Without one (local, no issuer key), entraToken webhooks and Event Grid topics fail, saying why.
    if identity is not None:
        targets.credentials.append(identity)
        targets.tokens = CredentialTokens(identity)
        topics = EventGridTopics(identity, timeout_seconds=config.webhook_timeout_seconds, http_allowed=config.local)
        targets.destinations = {**targets.destinations, DestinationKind.EVENT_GRID_TOPIC: topics}
    return targets


def herald_own(config: Settings) -> HeraldOwn:
    """What no subscription may name: Herald's Service Bus namespace (its identity is Data Owner of every
    queue there, the Event Grid ingest queue among them), the Event Grid topic it ingests from, and the
    audience of its own API (a token for it would be a token for Herald)."""
    return HeraldOwn.of(
        namespaces=(config.service_bus.endpoint("fullyQualifiedNamespace"), _namespace_of(config.service_bus)),
        topics=(config.eventgrid_topic_endpoint,),
        audiences=(config.auth_audience,),
    )


def _namespace_of(connection: Connection) -> str | None:
    """The namespace host of a Service Bus connection string (``Endpoint=sb://<namespace>/;…``)."""
    for part in (connection.connection_string or "").split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "endpoint":
            return urlsplit(value.strip()).hostname
    return None
