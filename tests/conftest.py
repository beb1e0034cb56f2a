"""Shared fixtures: a real Azurite for the session, Herald's services wired to it, a test issuer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.composition.root import Herald, Stores
from shared.config import Settings, load_settings
from shared.services import Services
from tests.support.azurite import Azurite, start_azurite
from tests.support.installed_herald import installed_herald
from tests.support.receiver import Receiver
from tests.support.tokens import TestIssuer


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = start_azurite()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> TestIssuer:
    return TestIssuer(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="session")
def settings(azurite: Azurite, issuer: TestIssuer) -> Settings:
    return load_settings(
        {
            "HERALD_MODE": "local",
            "HeraldStorage": azurite.connection_string,
            "HERALD_BUS": "storage-queue",
            "HERALD_AUTH_JWKS_PATH": str(issuer.jwks_path),
            "HERALD_SECRET_KEY_PATH": str(issuer.jwks_path.parent / "secret.key"),
            "HERALD_LOCAL_ISSUER_KEY_PATH": str(issuer.key_path),
        }
    )


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[Herald]:
    """Herald built on the test Azurite, also installed as the process's, so the function triggers
    (which call ``shared.composition.root.services()``) use it."""
    async with installed_herald(settings) as built:
        yield built


@pytest.fixture
def services(herald: Herald) -> Services:
    """The use cases, as routes and triggers see them."""
    return herald.services


@pytest.fixture
def stores(herald: Herald) -> Stores:
    """What the use cases are built on, for tests that look underneath."""
    return herald.stores


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    from shared.api.app import create_api

    async def provide() -> Services:
        return services

    api = create_api(provide)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:
        yield http


async def open_resource(services: Services, resource: str) -> str:
    """Gives a resource a policy that lets every identity publish, read and subscribe."""
    from shared.identity.authorization import ResourcePolicy

    await services.access.put_policy(resource, ResourcePolicy(publishers=["*"], owners=["*"]))
    return resource


@pytest.fixture
async def resource(services: Services) -> str:
    """A fresh resource per test, so tests sharing one Azurite never see each other's events;
    open to every identity (tests/identity covers the policies themselves)."""
    return await open_resource(services, f"urn:test:herald:{uuid.uuid4().hex[:12]}")


REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks every test that needs Azurite (through the session fixture), so ``make unit`` can leave them out."""
    for item in items:
        if "azurite" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.azurite)
