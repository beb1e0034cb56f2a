"""Opaque cursors of the order listing: the listing row to go on after, in a form clients cannot read."""

from __future__ import annotations

import re

from shared.cursors import seal, unseal

_VERSION = "o1"
# The store's listing row keys: t<20 digits>|<order id (a uuid)>.
_LISTING_KEY = re.compile(r"^t\d{20}\|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CursorInvalid(Exception):
    """The cursor was not issued by Herald's order listing."""


def encode_cursor(key: str) -> str:
    return seal(_VERSION, key)


def decode_cursor(token: str) -> str:
    key = unseal(_VERSION, token)
    if key is None or not _LISTING_KEY.match(key):
        raise CursorInvalid("'after' is not a cursor issued by Herald")
    return key
