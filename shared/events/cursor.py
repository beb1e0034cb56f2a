"""Opaque read cursors: a log position bound to the resource it was issued for."""

from __future__ import annotations

import hashlib

from shared.cursors import seal, unseal
from shared.events.log import Position

_VERSION = "1"


class CursorInvalid(Exception):
    """The cursor is malformed, belongs to another resource, or points past the log."""


class CursorExpired(Exception):
    """The cursor points at events removed by retention."""


def _resource_tag(resource: str) -> str:
    return hashlib.sha256(resource.encode()).hexdigest()[:10]


def encode_cursor(resource: str, position: Position) -> str:
    return seal(_VERSION, f"{position.seq}.{position.index}.{_resource_tag(resource)}")


def decode_cursor(token: str, resource: str) -> Position:
    payload = unseal(_VERSION, token)
    try:
        if payload is None:
            raise ValueError(token)
        seq, index, tag = payload.split(".")
        position = Position(int(seq), int(index))
    except ValueError as error:
        raise CursorInvalid("'after' is not a cursor issued by Herald") from error
    if position.seq < 0 or position.index < -1:
        raise CursorInvalid("'after' is not a cursor issued by Herald")
    if tag != _resource_tag(resource):
        raise CursorInvalid("'after' was issued for another resource")
    return position
