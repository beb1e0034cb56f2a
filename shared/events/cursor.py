"""Opaque read cursors: a log position bound to the resource it was issued for."""

from __future__ import annotations

import base64
import binascii
import hashlib

from shared.events.log import Position

_VERSION = "1"


class CursorInvalid(Exception):
    """The cursor is malformed, belongs to another resource, or points past the log."""


class CursorExpired(Exception):
    """The cursor points at events removed by retention."""


def _resource_tag(resource: str) -> str:
    return hashlib.sha256(resource.encode()).hexdigest()[:10]


def encode_cursor(resource: str, position: Position) -> str:
    raw = f"{_VERSION}.{position.seq}.{position.index}.{_resource_tag(resource)}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str, resource: str) -> Position:
    try:
        padded = token + "=" * (-len(token) % 4)
        version, seq, index, tag = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii").split(".")
        position = Position(int(seq), int(index))
    except (ValueError, UnicodeError, binascii.Error) as error:
        raise CursorInvalid("'after' is not a cursor issued by Herald") from error
    if version != _VERSION or position.seq < 0 or position.index < -1:
        raise CursorInvalid("'after' is not a cursor issued by Herald")
    if tag != _resource_tag(resource):
        raise CursorInvalid("'after' was issued for another resource")
    return position
