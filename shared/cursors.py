"""Opaque, versioned cursors: ``<version>.<payload>`` in unpadded URL-safe base64.

Every paged list hands out the same shape; each caller owns its version tag, what its payload
holds and the error it raises for a cursor it did not issue."""

from __future__ import annotations

import base64
import binascii


def seal(version: str, payload: str) -> str:
    return base64.urlsafe_b64encode(f"{version}.{payload}".encode()).decode().rstrip("=")


def unseal(version: str, token: str) -> str | None:
    """The payload of a cursor sealed with ``version``; None for anything else (malformed, another
    version, or an empty payload)."""
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (ValueError, UnicodeError, binascii.Error):
        return None
    tag, dot, payload = raw.partition(".")
    if tag != version or not dot or not payload:
        return None
    return payload
