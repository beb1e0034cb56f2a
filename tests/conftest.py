"""Shared fixtures: a real Azurite for the session, Herald's services wired to it, a test issuer."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.config import Settings, load_settings
from shared.container import Services, build_services
from shared.provisioning import provision
from tests.support.azurite import Azurite, start_azurite
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
        }
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    """Herald's real services on the test Azurite, also installed as the process container, so the
    function triggers (which call ``shared.container.services()``) use them."""
    from shared import container

    await provision(settings)
    built = build_services(settings)
    container.install_services(built)
    yield built
    await built.close()
    container._services = None


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

    await services.access.policies.put(resource, ResourcePolicy(publishers=["*"], owners=["*"]))
    await services.access.authorizer.changed()
    return resource


@pytest.fixture
async def resource(services: Services) -> str:
    """A fresh resource per test, so tests sharing one Azurite never see each other's events;
    open to every identity (tests/identity covers the policies themselves)."""
    return await open_resource(services, f"urn:test:herald:{uuid.uuid4().hex[:12]}")


REPO = Path(__file__).resolve().parents[1]
