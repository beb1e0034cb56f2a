"""Sealing subscription secrets at rest: AES-256-GCM under a data key.

Locally the data key is a key file (devhost's state folder, never committed). In Azure each
process makes a data key and has a Key Vault key wrap it (envelope encryption); a sealed value
carries its wrapped data key, and unwrapped keys are cached, so Key Vault is asked once per data
key, not once per delivery. The plaintext is never logged and never returned after creation.

A sealed value is bound to what it belongs to (a subscription's id) as AES-GCM associated data, so
a value copied into another subscription's row does not open there. Values sealed before that
binding (``v1``, constant associated data) still open; they are sealed again, bound, on the next write.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_LOCAL = "v2.local"
_WRAPPED = "v2.kv"
_UNBOUND = {"v1.local": _LOCAL, "v1.kv": _WRAPPED}  # before binding: the prefix was the associated data


class SecretBox(Protocol):
    async def seal(self, plaintext: str, *, bound_to: str) -> str:
        """Seals ``plaintext`` so that it opens only with the same ``bound_to``."""
        ...

    async def open(self, sealed: str, *, bound_to: str) -> str: ...


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _associated(prefix: str, kind: str, bound_to: str) -> bytes:
    """The associated data for a sealed value with this prefix; ValueError for another kind of box."""
    if _UNBOUND.get(prefix) == kind:
        return prefix.encode()
    if prefix != kind:
        raise ValueError(f"a {prefix} value does not open in a {kind} box")
    return f"{kind}\x00{bound_to}".encode()


def _encrypt(key: bytes, plaintext: str, associated: bytes) -> tuple[bytes, bytes]:
    nonce = os.urandom(12)
    return nonce, AESGCM(key).encrypt(nonce, plaintext.encode(), associated)


def _decrypt(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> str:
    return AESGCM(key).decrypt(nonce, ciphertext, associated).decode()


class LocalSecretBox:
    """A 256-bit key from a file (created on first use, readable by the owner only)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the secret key must be 32 bytes")
        self._key = key

    @classmethod
    def from_file(cls, path: str | Path) -> LocalSecretBox:
        file = Path(path)
        if not file.exists():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(_b64(os.urandom(32)))
            file.chmod(0o600)
        return cls(_unb64(file.read_text().strip()))

    async def seal(self, plaintext: str, *, bound_to: str) -> str:
        nonce, ciphertext = _encrypt(self._key, plaintext, _associated(_LOCAL, _LOCAL, bound_to))
        return f"{_LOCAL}.{_b64(nonce)}.{_b64(ciphertext)}"

    async def open(self, sealed: str, *, bound_to: str) -> str:
        prefix, nonce, ciphertext = sealed.rsplit(".", 2)
        associated = _associated(prefix, _LOCAL, bound_to)
        return _decrypt(self._key, _unb64(nonce), _unb64(ciphertext), associated)


class KeyWrapper(Protocol):
    """A key that wraps and unwraps data keys (Key Vault's RSA-OAEP-256 in Azure)."""

    async def wrap(self, data_key: bytes) -> bytes: ...

    async def unwrap(self, wrapped: bytes) -> bytes: ...


class EnvelopeSecretBox:
    def __init__(self, wrapper: KeyWrapper) -> None:
        self._wrapper = wrapper
        self._data_key: tuple[bytes, bytes] | None = None  # (plain, wrapped)
        self._unwrapped: dict[bytes, bytes] = {}
        self._lock = asyncio.Lock()

    async def _current(self) -> tuple[bytes, bytes]:
        async with self._lock:
            if self._data_key is None:
                plain = AESGCM.generate_key(bit_length=256)
                wrapped = await self._wrapper.wrap(plain)
                self._data_key = (plain, wrapped)
                self._unwrapped[wrapped] = plain
            return self._data_key

    async def seal(self, plaintext: str, *, bound_to: str) -> str:
        key, wrapped = await self._current()
        nonce, ciphertext = _encrypt(key, plaintext, _associated(_WRAPPED, _WRAPPED, bound_to))
        return f"{_WRAPPED}.{_b64(wrapped)}.{_b64(nonce)}.{_b64(ciphertext)}"

    async def open(self, sealed: str, *, bound_to: str) -> str:
        prefix, wrapped_text, nonce, ciphertext = sealed.rsplit(".", 3)
        associated = _associated(prefix, _WRAPPED, bound_to)
        wrapped = _unb64(wrapped_text)
        key = self._unwrapped.get(wrapped)
        if key is None:
            key = await self._wrapper.unwrap(wrapped)
            if len(self._unwrapped) > 1000:
                self._unwrapped.clear()
            self._unwrapped[wrapped] = key
        return _decrypt(key, _unb64(nonce), _unb64(ciphertext), associated)
