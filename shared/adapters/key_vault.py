"""Azure Key Vault: the key that wraps the data keys sealing subscription secrets."""

from __future__ import annotations

from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient

from shared.adapters.identity import credential_for
from shared.config import Connection


class KeyVaultKeyWrapper:
    def __init__(self, client: CryptographyClient) -> None:
        self._client = client

    @classmethod
    def from_key_uri(cls, key_uri: str, identity: Connection) -> KeyVaultKeyWrapper:
        return cls(CryptographyClient(key_uri, credential=credential_for(identity)))

    async def wrap(self, data_key: bytes) -> bytes:
        result = await self._client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, data_key)
        return bytes(result.encrypted_key)

    async def unwrap(self, wrapped: bytes) -> bytes:
        result = await self._client.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
        return bytes(result.key)

    async def close(self) -> None:
        await self._client.close()
