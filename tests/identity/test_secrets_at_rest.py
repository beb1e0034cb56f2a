"""Subscription signing secrets are sealed at rest and shown only once."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from azure.data.tables import UpdateMode
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.identity.secret_box import EnvelopeSecretBox, LocalSecretBox


async def test_the_stored_subscription_holds_no_readable_secret(
    client, issuer, receiver, resource, services, stores, caplog
):
    caplog.set_level("DEBUG")
    created = (
        await client.post(
            "/api/v1/subscriptions",
            json={"endPoint": receiver.url("sealed"), "resourceFilter": resource},
            headers=issuer.headers("events.subscribe"),
        )
    ).json()
    secret = created["secret"]
    table = stores.tables.get_table_client("subscriptions")
    [entity] = [e async for e in table.query_entities("RowKey eq @id", parameters={"id": created["id"]})]
    stored = " ".join(str(v) for v in entity.values())
    assert secret not in stored and secret[len("whsec_") :] not in stored
    assert entity["secret"].startswith("v2.local.")
    # Herald itself still signs with it, and never shows or logs it again.
    loaded = await services.subscriptions.get("org:991825827", created["id"])
    assert loaded.secrets.current == secret
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers("events.subscribe"))
    assert secret not in listed.text
    assert secret not in caplog.text


async def test_a_tampered_sealed_value_does_not_open(tmp_path):
    box = LocalSecretBox.from_file(tmp_path / "key")
    sealed = await box.seal("whsec_abc", bound_to="sub-1")
    assert await box.open(sealed, bound_to="sub-1") == "whsec_abc"
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(Exception):  # noqa: B017  (cryptography raises InvalidTag)
        await box.open(tampered, bound_to="sub-1")
    other = LocalSecretBox.from_file(tmp_path / "other-key")
    with pytest.raises(Exception):  # noqa: B017
        await other.open(sealed, bound_to="sub-1")


class CountingWrapper:
    """Stands in for Key Vault's wrap/unwrap (RSA-OAEP) with a reversible transform, counting calls."""

    def __init__(self) -> None:
        self.wraps = 0
        self.unwraps = 0

    async def wrap(self, data_key: bytes) -> bytes:
        self.wraps += 1
        return bytes(b ^ 0x5A for b in data_key)

    async def unwrap(self, wrapped: bytes) -> bytes:
        self.unwraps += 1
        return bytes(b ^ 0x5A for b in wrapped)


async def test_envelope_sealing_asks_the_key_vault_once_per_data_key():
    wrapper = CountingWrapper()
    writer = EnvelopeSecretBox(wrapper)
    sealed = [await writer.seal(f"whsec_{n}", bound_to=f"sub-{n}") for n in range(10)]
    assert wrapper.wraps == 1
    reader = EnvelopeSecretBox(wrapper)  # another process
    assert [await reader.open(s, bound_to=f"sub-{n}") for n, s in enumerate(sealed)] == [
        f"whsec_{n}" for n in range(10)
    ]
    assert wrapper.unwraps == 1


@pytest.mark.parametrize("box_kind", ["local", "envelope"])
async def test_a_sealed_value_opens_only_for_what_it_was_sealed_for(tmp_path, box_kind):
    box = LocalSecretBox.from_file(tmp_path / "key") if box_kind == "local" else EnvelopeSecretBox(CountingWrapper())
    sealed = await box.seal("whsec_abc", bound_to="subscription-a")
    assert await box.open(sealed, bound_to="subscription-a") == "whsec_abc"
    with pytest.raises(InvalidTag):
        await box.open(sealed, bound_to="subscription-b")


async def _subscribe(client, issuer, receiver, resource, name: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url(name), "resourceFilter": resource},
        headers=issuer.headers("events.subscribe"),
    )
    assert response.status_code == 201, response.text
    created: dict[str, str] = response.json()
    return created


async def _stored(stores, subscription_id: str) -> dict[str, object]:
    table = stores.tables.get_table_client("subscriptions")
    [entity] = [e async for e in table.query_entities("RowKey eq @id", parameters={"id": subscription_id})]
    return dict(entity)


async def _write(stores, entity: dict[str, object]) -> None:
    await stores.tables.get_table_client("subscriptions").update_entity(entity, mode=UpdateMode.MERGE)


async def test_a_sealed_secret_copied_to_another_subscription_does_not_open(
    client, issuer, receiver, resource, services, stores
):
    """Someone who can write the table but not read the key moves A's sealed secret into B's row:
    Herald must not sign B's deliveries with A's secret."""
    a = await _subscribe(client, issuer, receiver, resource, "a")
    b = await _subscribe(client, issuer, receiver, resource, "b")
    stolen = (await _stored(stores, a["id"]))["secret"]
    target = await _stored(stores, b["id"])
    await _write(stores, {"PartitionKey": target["PartitionKey"], "RowKey": target["RowKey"], "secret": stolen})
    try:
        with pytest.raises(InvalidTag):
            await services.subscriptions.get("org:991825827", b["id"])
        # A's own row still opens to A's secret, and the tampered row does not stop the others
        # from being listed or matched: it is left out.
        assert (await services.subscriptions.get("org:991825827", a["id"])).secrets.current == a["secret"]
        listed = await client.get("/api/v1/subscriptions", headers=issuer.headers("events.subscribe"))
        assert listed.status_code == 200
        ids: set[str] = set()
        after = None
        while True:
            page, after = await stores.subscription_store.page("org:991825827", after, 500)
            ids |= {s.id for s in page}
            if after is None:
                break
        assert a["id"] in ids and b["id"] not in ids
        matched = await stores.subscription_store.matching([target["PartitionKey"]])
        assert {s.id for found in matched.values() for s in found} <= {a["id"]}
        # A mangled value (not even a sealed one) is left out the same way.
        await _write(stores, {"PartitionKey": target["PartitionKey"], "RowKey": target["RowKey"], "secret": "v9.x"})
        matched = await stores.subscription_store.matching([target["PartitionKey"]])
        assert {s.id for found in matched.values() for s in found} <= {a["id"]}
    finally:
        # Put B's own sealed secret back, so no later test meets the tampered row.
        await _write(
            stores, {"PartitionKey": target["PartitionKey"], "RowKey": target["RowKey"], "secret": target["secret"]}
        )


def _sealed_before_binding(key_path: Path, plaintext: str) -> str:
    """A secret as earlier Herald versions stored it: AES-GCM with the constant associated data ``v1.local``."""
    text = key_path.read_text().strip()
    key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext.encode(), b"v1.local")

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"v1.local.{b64(nonce)}.{b64(ciphertext)}"


async def test_a_secret_sealed_before_binding_still_opens_and_is_bound_on_the_next_write(
    client, issuer, receiver, resource, services, stores, settings
):
    created = await _subscribe(client, issuer, receiver, resource, "old")
    stored = await _stored(stores, created["id"])
    # A real signing secret, so the subscription still signs whatever later test pushes to it.
    secret = created["secret"]
    old = _sealed_before_binding(Path(settings.secret_key_path), secret)
    await _write(stores, {"PartitionKey": stored["PartitionKey"], "RowKey": stored["RowKey"], "secret": old})

    loaded = await services.subscriptions.get("org:991825827", created["id"])
    assert loaded.secrets.current == secret

    # Any write of the subscription seals it again, bound to its id.
    await stores.subscription_store.update(loaded.index_key, loaded.id, lambda s: s)
    resealed = (await _stored(stores, created["id"]))["secret"]
    assert isinstance(resealed, str) and resealed.startswith("v2.local.")
    assert (await services.subscriptions.get("org:991825827", created["id"])).secrets.current == secret
