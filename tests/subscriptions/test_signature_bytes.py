"""Pushes are signed over the stored bytes, without decoding the body or parsing the secrets per push:
the signatures must be the library's own, byte for byte, and verify with it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks import Webhook

from shared.subscriptions.delivery import signature_headers
from shared.subscriptions.model import new_secret

BODIES = (
    b"{}",
    json.dumps({"data": "æøå ✓ \u2028", "n": 1}, ensure_ascii=False).encode(),
    b'{"x":"' + b"y" * 70_000 + b'"}',
)


def test_signatures_over_the_stored_bytes_are_the_librarys_and_verify():
    secrets = [new_secret(), new_secret()]
    now = datetime.now(UTC)
    for body in BODIES:
        headers = signature_headers("msg_0123", body, secrets, now)
        signatures = [Webhook(s).sign("msg_0123", now, body.decode()) for s in secrets]
        assert headers["webhook-signature"] == " ".join(signatures)
        assert headers["webhook-timestamp"] == str(int(now.timestamp()))
        for secret in secrets:
            Webhook(secret).verify(body, headers)
