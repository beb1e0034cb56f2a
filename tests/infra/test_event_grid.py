"""Event Grid: nothing it gives up on vanishes, and the topics' identities hold what their destinations need."""

from __future__ import annotations

import re

from tests.infra.bicep import INFRA, MAIN, Evaluator, bicep_files, object_properties, resources

ALERTS = INFRA / "modules" / "insights" / "alerts.bicep"


def _text(node: object) -> str:
    return (getattr(node, "text", b"") or b"").decode()


def test_every_event_subscription_has_a_dead_letter_destination() -> None:
    subscriptions = [
        (path, r) for path in bicep_files() for r in resources(path) if r.type.endswith("/eventSubscriptions")
    ]
    assert len(subscriptions) >= 2
    for path, subscription in subscriptions:
        properties = object_properties(object_properties(subscription.body)["properties"])
        assert {"deadLetterDestination", "deadLetterWithResourceIdentity"} & set(properties), (
            f"{path.name}:{subscription.symbol} drops events Event Grid gives up on: add a dead-letter destination"
        )


def test_identities_used_by_subscriptions_exist_and_hold_their_roles() -> None:
    for path in bicep_files():
        found = resources(path)
        for subscription in (r for r in found if r.type.endswith("/eventSubscriptions")):
            body = object_properties(subscription.body)
            parent = _text(body["parent"])
            (topic,) = [r for r in found if r.symbol == parent]
            identity = object_properties(object_properties(topic.body).get("identity", topic.body))
            properties = object_properties(body["properties"])
            for key in ("deadLetterWithResourceIdentity", "deliveryWithResourceIdentity"):
                if key not in properties:
                    continue
                assert "SystemAssigned" in _text(identity.get("type", topic.body)), (
                    f"{path.name}:{parent} has no system identity for {key}"
                )
                # A role assignment for that identity, scoped to the destination the subscription names.
                destination = object_properties(properties[key])
                target = destination.get("deadLetterDestination") or destination["destination"]
                assignments = [
                    object_properties(r.body)
                    for r in found
                    if r.type == "Microsoft.Authorization/roleAssignments"
                    and f"{parent}.identity.principalId" in r.text
                ]
                scopes = {_text(a["scope"]) for a in assignments}
                if key == "deadLetterWithResourceIdentity":
                    container = _text(object_properties(object_properties(target)["properties"])["blobContainerName"])
                    scoped = [r for r in found if r.symbol in scopes and r.type.endswith("/containers")]
                    assert scoped and all(container in r.text for r in scoped), (
                        f"{path.name}: no role on the container {container}"
                    )
                else:
                    queue = _text(
                        object_properties(object_properties(target)["properties"])["resourceId"]
                    ).removesuffix(".id")
                    assert queue in scopes, f"{path.name}: {parent}'s identity has no role on {queue}"


def test_dead_lettered_events_raise_an_alert_for_each_topic() -> None:
    text = ALERTS.read_text()
    assert re.search(r"metricName: 'DeadLetteredCount'", text), "no alert on Event Grid DeadLetteredCount"
    for custom in (False, True):
        evaluator = Evaluator(MAIN, {"enableCustomTopic": custom})
        topics = evaluator.modules()["alerts"]["params"]["eventGridTopics"]
        expected = {"Microsoft.EventGrid/systemTopics"} | ({"Microsoft.EventGrid/topics"} if custom else set())
        assert {topic["type"] for topic in topics} == expected
        sources = {topic["resourceId"].text for topic in topics}
        assert "communicationEvents.outputs.resourceId" in sources
        assert custom == ("customTopic!.outputs.resourceId" in sources)
