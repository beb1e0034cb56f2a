"""The read API's next link points at Herald's configured public URL, whatever Host the request names."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.events import event, next_link, publish


@pytest.fixture
def public_base(services):
    """Herald published behind a gateway under a path prefix (HERALD_PUBLIC_BASE_URL)."""
    original = services.settings
    services.settings = replace(original, public_base_url="https://herald.example.no/hub/")
    yield "https://herald.example.no/hub"
    services.settings = original


@pytest.mark.parametrize(
    "forged",
    ["attacker.example", "attacker.example:8443", "herald.example.no.attacker.example", "127.0.0.1:7071@attacker"],
)
async def test_a_forged_host_header_does_not_steer_the_next_link(client, issuer, resource, public_base, forged):
    headers = issuer.headers("events.read", "events.publish")
    await publish(client, headers, [event(resource, "one"), event(resource, "two")])
    response = await client.get(
        "/api/v1/events", params={"resource": resource, "size": 1}, headers={**headers, "host": forged}
    )
    assert response.status_code == 200, response.text
    link = next_link(response)
    assert link.startswith(f"{public_base}/api/v1/events?"), link
    assert "attacker" not in link
    # The link still reads on from where the page ended.
    path = link.removeprefix(public_base)
    assert [e["id"] for e in (await client.get(path, headers=headers)).json()] == ["two"]
