"""conditionEndpoint is a URL the orderer gives Herald to GET: the webhook endpoint policy applies
(https, no internal address) when the order is placed and again at connection, and no redirect is
followed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pytest_httpserver import HTTPServer

from shared.adapters.http_notification_condition import HttpConditionChecker
from shared.composition.notifications import build_notifications
from shared.config import Mode
from shared.endpoint_policy import EndpointPolicy
from shared.notifications.messages import ORDERS_QUEUE
from tests.identity.test_abuse_protection import RebindingResolver, StubResolver
from tests.notifications.conftest import Harness, post_order, status_of, statuses


def in_azure_mode(harness: Harness) -> None:
    """Herald's notifications as deployed (HERALD_MODE=azure), still sending through the local sink."""
    services, stores = harness.services, harness.stores
    services.notifications = build_notifications(
        replace(services.settings, mode=Mode.AZURE),
        stores.tables,
        harness.bus,
        services.publisher,
        settings=harness.feature.settings,
        clock=harness.clock,
        email=harness.sink.email,
        sms=harness.sink.sms,
        sink=harness.sink,
        publishing=services.access.authorizer,
    )


def order_starts(harness: Harness) -> int:
    return sum(1 for queue, _ in harness.bus.sent if queue == ORDERS_QUEUE)


REFUSED_IN_AZURE = [
    "http://203.0.113.10/condition",  # plain http
    "http://127.0.0.1:8080/condition",
    "https://127.0.0.1/condition",
    "https://localhost/condition",
    "https://[::1]/condition",
    "https://10.0.0.8/condition",
    "https://172.16.5.4/condition",
    "https://192.168.0.1/condition",
    "https://169.254.169.254/metadata/instance?api-version=2021-02-01",  # Azure instance metadata
    "https://168.63.129.16/condition",  # Azure wire server
    "https://[::ffff:169.254.169.254]/condition",  # IPv4-mapped
    "https://[64:ff9b::7f00:1]/condition",  # NAT64 form of 127.0.0.1
    "https://[fd00:ec2::254]/condition",
    "https://0.0.0.0/condition",
]


@pytest.mark.parametrize("url", REFUSED_IN_AZURE)
async def test_azure_mode_refuses_plain_http_and_internal_condition_endpoints(client, issuer, harness, sender, url):
    in_azure_mode(harness)
    response = await post_order(client, issuer, sender, conditionEndpoint=url)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["location"] == "conditionEndpoint"
    assert "https" in error["detail"] or "public endpoints" in error["detail"]
    assert order_starts(harness) == 0  # nothing was stored or scheduled


@pytest.mark.parametrize("url", ["http://10.0.0.1/condition", "http://example.org/condition"])
async def test_local_mode_allows_plain_http_to_loopback_only(client, issuer, harness, sender, url):
    response = await post_order(client, issuer, sender, conditionEndpoint=url)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["location"] == "conditionEndpoint"


async def test_a_redirect_from_the_condition_endpoint_is_not_followed(
    client, issuer, harness, sender, httpserver: HTTPServer
):
    httpserver.expect_request("/moved").respond_with_data("", status=302, headers={"Location": "/inside"})
    httpserver.expect_request("/inside").respond_with_json({"sendNotification": False})
    order = await post_order(client, issuer, sender, conditionEndpoint=httpserver.url_for("/moved"))
    assert order.status_code == 202, order.text
    order_id = order.json()["orderId"]
    await harness.run(order_id)
    assert [request.path for request, _ in httpserver.log] == ["/moved", "/moved"]  # asked, retried once
    # A redirect is no answer: after the retry the order is sent anyway (fail open), never judged by /inside.
    assert statuses(await status_of(client, issuer, sender, order_id)) == {"kari@example.com": "Succeeded"}


async def test_azure_mode_refuses_a_loopback_condition_endpoint_at_connection(
    client, issuer, harness, sender, httpserver: HTTPServer
):
    """An order stored while the URL was allowed (local mode here): in azure mode the check connects nowhere."""
    httpserver.expect_request("/condition").respond_with_json({"sendNotification": False})
    order = await post_order(client, issuer, sender, conditionEndpoint=httpserver.url_for("/condition"))
    assert order.status_code == 202, order.text
    in_azure_mode(harness)
    await harness.run(order.json()["orderId"])
    assert httpserver.log == []


async def test_dns_rebinding_of_a_condition_endpoint_is_refused_at_connection(httpserver: HTTPServer):
    """The name resolved to a public address when the order was placed; at check time it resolves to
    loopback: no request leaves."""
    httpserver.expect_request("/condition").respond_with_json({"sendNotification": False})
    url = f"https://rebind.example:{httpserver.port}/condition"
    public = StubResolver({"rebind.example": ["93.184.216.34"]})
    await EndpointPolicy(local_mode=False, resolver=public).check(url, field="conditionEndpoint")

    rebinding = RebindingResolver(httpserver.port)
    checker = HttpConditionChecker(endpoints=EndpointPolicy(local_mode=False), resolver=rebinding)
    assert await checker.check(url) is None
    assert rebinding.lookups == 1
    assert httpserver.log == []
