"""Mapped identities (HERALD_AUTH_IDENTITIES=mapped, as with Microsoft Entra ID): a token names an
account, its tenant (``tid``) and object id (``oid``), and Herald's own ``identities`` table says which
Herald identity that account acts for. Administrators keep the table through /api/v1/admin/identities;
an administrator not mapped yet reaches the admin routes only. The default (``token``) is unchanged:
``sub`` is the identity.

Tokens are shaped as Entra v2 access tokens (opaque pairwise ``sub``, ``tid``, ``oid``, ``azp``) and
signed with generated keys; the table is the real one, on Azurite.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.adapters.table_identities import TableAccountMappings
from shared.composition.identity import mapped_accounts
from shared.composition.root import Stores
from shared.config import load_settings
from shared.identity.accounts import ADMIN_BOOTSTRAP, Account, AccountMapping, MappedIdentities
from shared.identity.tokens import JwksFileKeys, TokenInvalid, TokenValidator
from shared.services import Services
from tests.support.tokens import AUDIENCE, ISSUER, TestIssuer

PERSON = "person:01017012343"
ORG = "org:991825827"
CONSOLE = "6f1c1c4e-8d65-4e0a-9a55-2f3b1c0d7e11"  # the console's client id (a public client)
DAEMON = "0b7a3e52-41d4-4c6e-b0a6-1c9f5e2d8a77"  # a publisher using client credentials
PROBLEM = "application/problem+json"


def entra_claims(tenant: str, oid: str | None = None, **extra: Any) -> dict[str, Any]:
    """A v2 access token for a user signed in through the console."""
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ",
        "oid": oid or str(uuid.uuid4()),
        "tid": tenant,
        "azp": CONSOLE,
        "scp": "events.read events.subscribe",
        "ver": "2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        **extra,
    }


def app_only_claims(tenant: str, oid: str) -> dict[str, Any]:
    """A client-credentials token: roles, no scp, ``sub`` = ``oid`` = the service principal's object id."""
    claims = entra_claims(tenant, oid, azp=DAEMON, idtyp="app", roles=["events.publish"])
    del claims["scp"]
    claims["sub"] = oid
    return claims


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys(tmp_path: Path, key: rsa.RSAPrivateKey) -> JwksFileKeys:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": "entra-key", "use": "sig"})
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}))
    return JwksFileKeys(tmp_path / "jwks.json")


@pytest.fixture
def tenant() -> str:
    return str(uuid.uuid4())


def signed(key: rsa.RSAPrivateKey, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "entra-key"})


async def refused(validator: TokenValidator, token: str) -> str:
    with pytest.raises(TokenInvalid) as caught:
        await validator.validate(token)
    return str(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------------- the validator


async def test_by_default_sub_is_the_identity_as_before(key, keys, tenant):
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys)
    principal = await validator.validate(signed(key, entra_claims(tenant, sub=ORG)))
    assert principal.subject == ORG and principal.account is None and not principal.bootstrap
    # An Entra sub is passed on as it is; the API then refuses it as no Herald identity (401).
    assert (await validator.validate(signed(key, entra_claims(tenant)))).subject.startswith("AAAA")
    assert "no subject" in await refused(validator, signed(key, entra_claims(tenant, sub="")))


async def test_a_mapped_user_is_the_identity_the_table_names(key, keys, tenant, stores: Stores):
    identities = MappedIdentities(TableAccountMappings(stores.tables))
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=identities)
    oid = str(uuid.uuid4())
    await identities.put(AccountMapping(Account(tenant, oid), PERSON, note="Kari Nordmann"))
    principal = await validator.validate(signed(key, entra_claims(tenant, oid)))
    assert principal.subject == PERSON
    assert principal.scopes == {"events.read", "events.subscribe"}
    assert principal.account == Account(tenant, oid)
    # The ids are compared as Entra issues them, whatever their case.
    upper = await validator.validate(signed(key, entra_claims(tenant.upper(), oid.upper())))
    assert upper.subject == PERSON


async def test_an_unmapped_account_is_refused_naming_its_ids(key, keys, tenant, stores: Stores):
    validator = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=MappedIdentities(TableAccountMappings(stores.tables))
    )
    oid = str(uuid.uuid4())
    message = await refused(validator, signed(key, entra_claims(tenant, oid, sub=PERSON)))
    assert message == (f"this account has no Herald identity; ask an administrator to map tenant {tenant} object {oid}")
    # A delegated 'admin' scope is no bootstrap: only the app role is.
    delegated = await refused(validator, signed(key, entra_claims(tenant, oid, scp="admin events.read")))
    assert "has no Herald identity" in delegated


@pytest.mark.parametrize("missing", ["tid", "oid"])
async def test_a_token_without_tid_or_oid_is_refused(key, keys, tenant, stores: Stores, missing):
    validator = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=MappedIdentities(TableAccountMappings(stores.tables))
    )
    claims = entra_claims(tenant)
    del claims[missing]
    message = await refused(validator, signed(key, claims))
    assert "lacks the 'tid' and 'oid' claims" in message


async def test_an_application_is_mapped_by_its_service_principals_object_id(key, keys, tenant, stores: Stores):
    identities = MappedIdentities(TableAccountMappings(stores.tables))
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=identities)
    service_principal = str(uuid.uuid4())
    await identities.put(AccountMapping(Account(tenant, service_principal), "system:billing"))
    principal = await validator.validate(signed(key, app_only_claims(tenant, service_principal)))
    assert principal.subject == "system:billing"
    assert principal.scopes == {"events.publish"}
    # The same client acting for a user does not lend the user its identity: the user's own oid counts.
    message = await refused(validator, signed(key, entra_claims(tenant, azp=DAEMON)))
    assert "has no Herald identity" in message


async def test_a_removed_mapping_takes_effect_within_the_cache_time(key, keys, tenant, stores: Stores):
    # Two instances on one table: the administrator's change reaches the other one through its cache.
    admin_side = MappedIdentities(TableAccountMappings(stores.tables))
    clock = Clock()
    other = MappedIdentities(TableAccountMappings(stores.tables), ttl_seconds=60, clock=clock)
    validator = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=other)
    oid = str(uuid.uuid4())
    await admin_side.put(AccountMapping(Account(tenant, oid), ORG))
    token = signed(key, entra_claims(tenant, oid))
    assert (await validator.validate(token)).subject == ORG
    assert await admin_side.delete(Account(tenant, oid))
    clock.now += 59
    assert (await validator.validate(token)).subject == ORG  # cached: no storage read per request
    clock.now += 1
    assert "has no Herald identity" in await refused(validator, token)
    # The instance that made a change sees it at once.
    await admin_side.put(AccountMapping(Account(tenant, oid), ORG))
    mapped_here = TokenValidator(issuer=ISSUER, audience=AUDIENCE, keys=keys, accounts=admin_side)
    assert (await mapped_here.validate(token)).subject == ORG
    await admin_side.delete(Account(tenant, oid))
    assert "has no Herald identity" in await refused(mapped_here, token)


async def test_an_entra_v2_token_names_the_api_by_its_client_id(key, keys, tenant):
    # Herald's audience is the Application ID URI api://<client id>; Entra's v2.0 tokens carry the bare id.
    api = "3f2a9c1e-5b7d-4e8f-a1c2-d3e4f5a6b7c8"
    validator = TokenValidator(issuer=ISSUER, audience=f"api://{api}", keys=keys)
    for audience in (api, f"api://{api}"):
        principal = await validator.validate(signed(key, entra_claims(tenant, aud=audience, sub=PERSON)))
        assert principal.subject == PERSON
    assert "another audience" in await refused(validator, signed(key, entra_claims(tenant, aud=str(uuid.uuid4()))))
    # Any other audience is matched exactly, as before.
    plain = TokenValidator(issuer=ISSUER, audience="api://herald", keys=keys)
    assert "another audience" in await refused(plain, signed(key, entra_claims(tenant, aud="herald", sub=PERSON)))


def test_the_setting_selects_the_mode(stores: Stores):
    identities = MappedIdentities(TableAccountMappings(stores.tables))
    assert load_settings({}).auth_identities == "token"
    assert mapped_accounts(load_settings({}), identities) is None
    assert mapped_accounts(load_settings({"HERALD_AUTH_IDENTITIES": " Mapped "}), identities) is identities
    with pytest.raises(RuntimeError, match="HERALD_AUTH_IDENTITIES is token or mapped"):
        mapped_accounts(load_settings({"HERALD_AUTH_IDENTITIES": "claim"}), identities)


# ---------------------------------------------------------------------------------- through the API


@pytest.fixture
async def entra_client(services: Services, issuer: TestIssuer) -> AsyncIterator[httpx.AsyncClient]:
    """Herald's API with mapped identities, as in an Entra deployment (the admin routes' own map)."""
    from shared.api.app import create_api

    tokens = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, keys=JwksFileKeys(issuer.jwks_path), accounts=services.identities
    )
    configured = dataclasses.replace(services, tokens=tokens)

    async def provide() -> Services:
        return configured

    transport = httpx.ASGITransport(app=create_api(provide))
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as http:
        yield http


def bearer(issuer: TestIssuer, claims: dict[str, Any]) -> dict[str, str]:
    claims = {k: v for k, v in claims.items() if k not in {"iss", "aud", "iat", "nbf", "exp"}}
    scopes = claims.pop("scp", "").split()
    token = issuer.token(claims.pop("sub"), scopes, extra=claims)
    return {"Authorization": f"Bearer {token}"}


def administrator(issuer: TestIssuer, tenant: str, oid: str | None = None) -> dict[str, str]:
    """An administrator's token: the app role 'admin' (Entra puts app roles in ``roles``)."""
    return bearer(issuer, entra_claims(tenant, oid, scp="events.read", roles=["admin"]))


async def test_an_unmapped_administrator_maps_accounts_their_own_too(entra_client, issuer, tenant, resource):
    admin_oid = str(uuid.uuid4())
    admin = administrator(issuer, tenant, admin_oid)
    me = await entra_client.get("/api/v1/me", headers=admin)
    assert me.status_code == 200, me.text
    assert me.json() == {
        "identity": ADMIN_BOOTSTRAP,
        "scopes": ["admin"],
        "account": {"tenant": tenant, "objectId": admin_oid},
        "mapped": False,
    }
    # Elsewhere an unmapped administrator is nobody: 401 with the ids to ask for.
    events = await entra_client.get("/api/v1/events", params={"resource": resource}, headers=admin)
    assert events.status_code == 401
    assert events.headers["content-type"].startswith(PROBLEM)
    assert f"map tenant {tenant} object {admin_oid}" in events.json()["detail"]

    mapped = await entra_client.put(
        f"/api/v1/admin/identities/{tenant}/{admin_oid}",
        json={"identity": PERSON, "note": "the first admin"},
        headers=admin,
    )
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["updatedBy"] == ADMIN_BOOTSTRAP
    me = await entra_client.get("/api/v1/me", headers=admin)
    assert me.json()["identity"] == PERSON and me.json()["mapped"] is True
    assert sorted(me.json()["scopes"]) == ["admin", "events.read"]
    events = await entra_client.get("/api/v1/events", params={"resource": resource}, headers=admin)
    assert events.status_code == 200, events.text


async def test_a_user_sees_their_identity_and_an_unmapped_one_is_told_their_ids(entra_client, issuer, tenant):
    oid = str(uuid.uuid4())
    user = bearer(issuer, entra_claims(tenant, oid))
    refused_response = await entra_client.get("/api/v1/me", headers=user)
    assert refused_response.status_code == 401
    assert refused_response.headers["www-authenticate"].startswith("Bearer")
    assert refused_response.json()["detail"] == (
        f"this account has no Herald identity; ask an administrator to map tenant {tenant} object {oid}"
    )
    # Only an administrator maps: the user cannot map themselves.
    own = await entra_client.put(f"/api/v1/admin/identities/{tenant}/{oid}", json={"identity": ORG}, headers=user)
    assert own.status_code == 401
    admin = administrator(issuer, tenant)
    assert (
        await entra_client.put(f"/api/v1/admin/identities/{tenant}/{oid}", json={"identity": ORG}, headers=admin)
    ).status_code == 200
    me = await entra_client.get("/api/v1/me", headers=user)
    assert me.json() == {
        "identity": ORG,
        "scopes": ["events.read", "events.subscribe"],
        "account": {"tenant": tenant, "objectId": oid},
        "mapped": True,
    }
    # A mapped user without the admin scope gets 403 on the admin routes.
    assert (await entra_client.get(f"/api/v1/admin/identities/{tenant}/{oid}", headers=user)).status_code == 403


async def test_administrators_put_read_list_and_delete_mappings(entra_client, issuer, tenant):
    first, second = administrator(issuer, tenant), administrator(issuer, tenant)
    objects = sorted(str(uuid.uuid4()) for _ in range(3))
    for number, oid in enumerate(objects):
        response = await entra_client.put(
            f"/api/v1/admin/identities/{tenant}/{oid.upper()}",
            json={"identity": f"system:app-{number}", "note": f"application {number}"},
            headers=first,
        )
        assert response.status_code == 200, response.text
        assert response.json()["objectId"] == oid  # kept in lower case, as tokens carry it

    # Another administrator sees what the first one set.
    one = await entra_client.get(f"/api/v1/admin/identities/{tenant}/{objects[1]}", headers=second)
    assert one.status_code == 200
    body = one.json()
    assert {k: body[k] for k in ("tenant", "objectId", "identity", "note", "updatedBy")} == {
        "tenant": tenant,
        "objectId": objects[1],
        "identity": "system:app-1",
        "note": "application 1",
        "updatedBy": ADMIN_BOOTSTRAP,
    }
    assert body["updated"]

    # The whole list, two at a time, through the Link header.
    seen: list[tuple[str, str]] = []
    url: str | None = "/api/v1/admin/identities?size=2"
    while url:
        page = await entra_client.get(url, headers=second)
        assert page.status_code == 200, page.text
        assert page.json()["count"] == len(page.json()["identities"]) <= 2
        seen += [(m["objectId"], m["identity"]) for m in page.json()["identities"] if m["tenant"] == tenant]
        link = page.headers.get("link")
        url = link[link.index("<") + 1 : link.index(">")].removeprefix("http://127.0.0.1:7071") if link else None
    assert seen == [(oid, f"system:app-{number}") for number, oid in enumerate(objects)]

    deleted = await entra_client.delete(f"/api/v1/admin/identities/{tenant}/{objects[0]}", headers=second)
    assert deleted.status_code == 204
    gone = await entra_client.get(f"/api/v1/admin/identities/{tenant}/{objects[0]}", headers=first)
    assert gone.status_code == 404 and gone.headers["content-type"].startswith(PROBLEM)
    again = await entra_client.delete(f"/api/v1/admin/identities/{tenant}/{objects[0]}", headers=first)
    assert again.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("{tenant}/{oid}", {"identity": "org:991825828"}, "organisation number"),  # a wrong check digit
        ("{tenant}/{oid}", {"identity": "someone@example.gov"}, "identity"),
        ("{tenant}/{oid}", {"identity": PERSON, "role": "admin"}, "role"),  # an unknown field
        ("{tenant}/{oid}", {"identity": PERSON, "note": "x" * 501}, "note"),
        ("{tenant}/{oid}", {}, "identity"),
        ("not-a-tenant/{oid}", {"identity": PERSON}, "tenant"),
        ("{tenant}/{oid}x", {"identity": PERSON}, "objectId"),
    ],
)
async def test_bad_input_is_a_400_and_changes_nothing(entra_client, issuer, tenant, path, body, expected):
    admin = administrator(issuer, tenant)
    oid = str(uuid.uuid4())
    before = await entra_client.put(f"/api/v1/admin/identities/{tenant}/{oid}", json={"identity": ORG}, headers=admin)
    assert before.status_code == 200
    response = await entra_client.put(
        f"/api/v1/admin/identities/{path.format(tenant=tenant, oid=oid)}", json=body, headers=admin
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert expected in response.text
    after = await entra_client.get(f"/api/v1/admin/identities/{tenant}/{oid}", headers=admin)
    assert after.json()["identity"] == ORG and after.json()["updated"] == before.json()["updated"]


async def test_a_cursor_herald_did_not_issue_is_a_400(entra_client, issuer, tenant):
    response = await entra_client.get(
        "/api/v1/admin/identities", params={"after": "bm9wZQ"}, headers=administrator(issuer, tenant)
    )
    assert response.status_code == 400
    assert response.json()["type"].endswith("cursor-invalid")


async def test_me_in_token_mode_is_the_tokens_sub(client, issuer):
    response = await client.get("/api/v1/me", headers=issuer.headers("events.read", sub=ORG))
    assert response.status_code == 200
    assert response.json() == {"identity": ORG, "scopes": ["events.read"], "account": None, "mapped": True}
    assert (await client.get("/api/v1/me", headers=issuer.headers("openid"))).status_code == 403
