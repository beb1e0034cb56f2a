"""Accounts of an external issuer mapped to Herald identities (``HERALD_AUTH_IDENTITIES=mapped``).

Microsoft Entra ID puts no Herald identity in its tokens: ``sub`` is an opaque pairwise id. Herald
keeps its own map instead, from the account a token names, its tenant (``tid``) and object id
(``oid``), to the Herald identity it acts for. Administrators maintain the map through the API; users
and applications alike (an app-only token's ``oid`` is its service principal's). Nothing the account
can write in the directory decides who it is in Herald.

Lookups are cached for ``CACHE_SECONDS``, so a request costs no storage read: a changed or removed
mapping takes effect at once on the instance that made the change and within that time on the others.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.identity.parties import parse_party
from shared.ttl_cache import TtlCache

CACHE_SECONDS = 60.0
# Entra's tenant and object ids are GUIDs; kept in lower case, as its tokens carry them.
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
GUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
# Who an administrator (the ``admin`` app role) is before their own account is mapped: admin routes only.
ADMIN_BOOTSTRAP = "system:herald-admin"
MAX_NOTE_LENGTH = 500


@dataclass(frozen=True, order=True)
class Account:
    tenant: str
    object_id: str

    @classmethod
    def of(cls, tenant: str, object_id: str) -> Account:
        return cls(tenant.strip().lower(), object_id.strip().lower())

    @property
    def well_formed(self) -> bool:
        return bool(_GUID.fullmatch(self.tenant) and _GUID.fullmatch(self.object_id))


@dataclass(frozen=True)
class AccountMapping:
    account: Account
    identity: str
    note: str | None = None
    updated: datetime | None = None
    updated_by: str | None = None  # the administrator's Herald identity


def unmapped_detail(account: Account) -> str:
    """The 401's words: the ids are what the person needs to ask for a mapping."""
    return (
        "this account has no Herald identity; ask an administrator to map "
        f"tenant {account.tenant} object {account.object_id}"
    )


class AccountMappings(Protocol):
    """The ``identities`` table."""

    async def get(self, account: Account) -> AccountMapping | None: ...

    async def put(self, mapping: AccountMapping) -> None: ...

    async def delete(self, account: Account) -> bool: ...

    async def list(self, after: Account | None, limit: int) -> tuple[list[AccountMapping], Account | None]:
        """A page in (tenant, object id) order after ``after``, and its last account when more follow."""
        ...


class AccountLookup(Protocol):
    """What token validation asks: the Herald identity of an account, or None."""

    async def identity_of(self, account: Account) -> str | None: ...


class MappedIdentities:
    """The map's use cases: the cached lookup for token validation, and its administration."""

    def __init__(
        self, store: AccountMappings, *, ttl_seconds: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._cache: TtlCache[Account, str | None] = TtlCache(ttl_seconds, clock=clock)

    async def identity_of(self, account: Account) -> str | None:
        if not account.well_formed:  # no store read for what cannot be mapped
            return None
        return await self._cache.get(account, self._load)

    async def _load(self, account: Account) -> str | None:
        mapping = await self._store.get(account)
        return mapping.identity if mapping is not None else None

    async def get(self, account: Account) -> AccountMapping | None:
        return await self._store.get(account)

    async def put(self, mapping: AccountMapping) -> AccountMapping:
        """Maps an account (replacing its mapping); the identity must be a valid Herald identity."""
        mapping = AccountMapping(
            account=mapping.account,
            identity=str(parse_party(mapping.identity)),
            note=mapping.note,
            updated=mapping.updated,
            updated_by=mapping.updated_by,
        )
        await self._store.put(mapping)
        self._cache.discard(mapping.account)
        return mapping

    async def delete(self, account: Account) -> bool:
        deleted = await self._store.delete(account)
        self._cache.discard(account)
        return deleted

    async def list(self, after: Account | None, limit: int) -> tuple[list[AccountMapping], Account | None]:
        return await self._store.list(after, limit)
