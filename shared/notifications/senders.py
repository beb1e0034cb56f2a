"""Sender identities an administrator grants an orderer: who an order may claim to send as.

An order's ``emailTemplate.fromAddress`` and ``smsTemplate.senderNumber`` are shown to recipients as
the sender, so they are as sensitive as the orderer's identity: Herald sends as an address or an
SMS sender only when an administrator granted it to that orderer (``/api/v1/admin/senders``). The
configured default senders stay available to every orderer.

An email grant is an address or a whole domain (``skatteetaten.no``: any address at exactly that
domain, not its subdomains). Addresses and domains compare case-insensitively, as mail systems do;
SMS senders (alphanumeric names or numbers) too, since ``SKATTEETAT`` reads as ``Skatteetat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from shared.notifications.config import NotificationConfig
from shared.notifications.model import EmailTemplate, SmsTemplate


@dataclass(frozen=True)
class SenderGrants:
    """What one orderer may send as, besides the defaults."""

    email_addresses: tuple[str, ...] = ()
    email_domains: tuple[str, ...] = ()
    sms_senders: tuple[str, ...] = ()


class SenderGrantStore(Protocol):
    async def get(self, orderer: str) -> SenderGrants | None: ...

    async def put(self, orderer: str, grants: SenderGrants) -> None: ...

    async def delete(self, orderer: str) -> bool: ...

    async def list(self) -> dict[str, SenderGrants]: ...


class SenderGrantAdmin:
    """The administrators' use case (``/api/v1/admin/senders``): list, read, grant and revoke senders."""

    def __init__(self, store: SenderGrantStore) -> None:
        self._store = store

    async def list(self) -> dict[str, SenderGrants]:
        return await self._store.list()

    async def get(self, orderer: str) -> SenderGrants | None:
        return await self._store.get(orderer)

    async def put(self, orderer: str, grants: SenderGrants) -> None:
        await self._store.put(orderer, grants)

    async def delete(self, orderer: str) -> bool:
        """False when the orderer had no grants."""
        return await self._store.delete(orderer)


@dataclass(frozen=True)
class SenderRefusal:
    location: str  # emailTemplate.fromAddress | smsTemplate.senderNumber
    value: str


@dataclass(frozen=True)
class SenderPolicy:
    config: NotificationConfig
    store: SenderGrantStore

    async def refused(self, orderer: str, email: EmailTemplate | None, sms: SmsTemplate | None) -> list[SenderRefusal]:
        """The senders the templates claim that ``orderer`` was not granted (empty: all allowed)."""
        address = email.from_address if email else None
        sender = sms.sender_number if sms else None
        wanted_address = address is not None and address.casefold() != self.config.email_sender.casefold()
        wanted_sender = sender is not None and sender.casefold() != self.config.sms_sender.casefold()
        if not (wanted_address or wanted_sender):
            return []  # no grant lookup for orders that use the defaults
        grants = await self.store.get(orderer) or SenderGrants()
        refused: list[SenderRefusal] = []
        if wanted_address and address is not None and not email_granted(grants, address):
            refused.append(SenderRefusal("emailTemplate.fromAddress", address))
        if wanted_sender and sender is not None and not sms_granted(grants, sender):
            refused.append(SenderRefusal("smsTemplate.senderNumber", sender))
        return refused


def email_granted(grants: SenderGrants, address: str) -> bool:
    wanted = address.casefold()
    domain = wanted.rpartition("@")[2]
    return any(a.casefold() == wanted for a in grants.email_addresses) or any(
        d.casefold() == domain for d in grants.email_domains
    )


def sms_granted(grants: SenderGrants, sender: str) -> bool:
    return any(s.casefold() == sender.casefold() for s in grants.sms_senders)
