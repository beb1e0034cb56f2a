"""Microsoft Entra ID credentials for identity-based connections (no keys anywhere in Azure)."""

from __future__ import annotations

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

from shared.config import Connection


def credential_for(connection: Connection) -> AsyncTokenCredential:
    """``<prefix>__credential=managedidentity`` (+ ``__clientId``) as the Functions host reads it."""
    if connection.identity.get("credential", "").lower() == "managedidentity":
        client_id = connection.identity.get("clientId")
        return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
    return DefaultAzureCredential()
