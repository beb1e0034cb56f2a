"""devhost: runs Herald's ``function_app.app`` locally in place of Azure Functions Core Tools.

It serves HTTP and Event Grid webhooks, drives Service Bus triggers from Azurite storage queues
with peek-lock semantics, fires timers, and issues local access tokens.
"""

from devhost.host import DevHost, DevHostOptions
from devhost.issuer import ensure_issuer_keys, issue_token

__all__ = ["DevHost", "DevHostOptions", "ensure_issuer_keys", "issue_token"]
