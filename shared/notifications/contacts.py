"""The contact registry's admin use case: administrators load and read the registry Herald keeps."""

from __future__ import annotations

from collections.abc import Sequence

from shared.notifications.ports import ContactStore, Organization, Person


class ContactAdmin:
    def __init__(self, store: ContactStore) -> None:
        self._store = store

    async def put_persons(self, persons: Sequence[Person]) -> int:
        """Upserts the persons; how many were stored."""
        return await self._store.put_persons(persons)

    async def put_organizations(self, organizations: Sequence[Organization]) -> int:
        return await self._store.put_organizations(organizations)

    async def person(self, nin: str) -> Person | None:
        return (await self._store.persons([nin])).get(nin)

    async def organization(self, number: str) -> Organization | None:
        return (await self._store.organizations([number])).get(number)
