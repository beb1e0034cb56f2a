"""Subscription signing secrets are sealed at rest and shown only once."""

from __future__ import annotations

import pytest

from shared.identity.secret_box import EnvelopeSecretBox, LocalSecretBox


async def test_the_stored_subscription_holds_no_readable_secret(client, issuer, receiver, resource, services, caplog):
    caplog.set_level("DEBUG")
    created = (
        await client.post(
            "/api/v1/subscriptions",
            json={"endPoint": receiver.url("sealed"), "resourceFilter": resource},
            headers=issuer.headers("events.subscribe"),
        )
    ).json()
    secret = created["secret"]
    table = services.tables.get_table_client("subscriptions")
    [entity] = [e async for e in table.query_entities("RowKey eq @id", parameters={"id": created["id"]})]
    stored = " ".join(str(v) for v in entity.values())
    assert secret not in stored and secret[len("whsec_") :] not in stored
    assert entity["secret"].startswith("v1.local.")
    # Herald itself still signs with it, and never shows or logs it again.
    loaded = await services.subscriptions.get("org:991825827", created["id"])
    assert loaded.secrets.current == secret
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers("events.subscribe"))
    assert secret not in listed.text
    assert secret not in caplog.text


async def test_a_tampered_sealed_value_does_not_open(tmp_path):
    box = LocalSecretBox.from_file(tmp_path / "key")
    sealed = await box.seal("whsec_abc")
    assert await box.open(sealed) == "whsec_abc"
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(Exception):  # noqa: B017  (cryptography raises InvalidTag)
        await box.open(tampered)
    other = LocalSecretBox.from_file(tmp_path / "other-key")
    with pytest.raises(Exception):  # noqa: B017
        await other.open(sealed)


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
    sealed = [await writer.seal(f"whsec_{n}") for n in range(10)]
    assert wrapper.wraps == 1
    reader = EnvelopeSecretBox(wrapper)  # another process
    assert [await reader.open(s) for s in sealed] == [f"whsec_{n}" for n in range(10)]
    assert wrapper.unwraps == 1
