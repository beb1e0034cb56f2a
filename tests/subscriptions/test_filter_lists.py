"""Filters holding a list, filters refused because no event could match them, ``includeSubunits``, and a
subscription stored before any of these still working."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from azure.data.tables.aio import TableServiceClient
from hypothesis import assume, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from shared.events.dispatch import INBOUND_QUEUE
from shared.identity.secret_box import LocalSecretBox
from shared.subscriptions.messages import OUTBOUND_QUEUE
from shared.subscriptions.model import (
    FilterProblem,
    Filters,
    identity_hash,
    index_keys_for_event,
    matches_pattern,
    parent_index_key,
)
from tests.subscriptions.conftest import active_subscription, events_received
from tests.support.events import event, publish
from tests.support.identities import random_org, random_person
from tests.support.pipeline import drain

PIPELINE = (INBOUND_QUEUE, OUTBOUND_QUEUE)
SUBSCRIBE = ("events.subscribe",)


async def test_a_list_of_subjects_or_types_matches_any_of_them(client, issuer, receiver, resource, stores):
    kari, ola, per = random_person(), random_person(), random_person()
    created = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("lists"),
            "resourceFilter": resource,
            "subjectFilter": [ola, kari, ola],
            "typeFilter": ["no.case.opened", "no.case.closed.*", "no.case.opened"],
        },
    )
    assert created["subjectFilter"] == sorted({kari, ola})  # duplicates dropped, in one order
    assert created["typeFilter"] == ["no.case.closed.*", "no.case.opened"]
    one = await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("one"), "resourceFilter": resource, "subjectFilter": [per], "typeFilter": ["t"]},
    )
    assert one["subjectFilter"] == per and one["typeFilter"] == "t"  # a list of one is that value

    await publish(
        client,
        issuer.headers("events.publish"),
        [
            event(resource, "kari-opened", subject=kari, type="no.case.opened"),
            event(resource, "ola-closed", subject=ola, type="no.case.closed.late"),
            event(resource, "ola-other", subject=ola, type="no.case.updated"),
            event(resource, "per-opened", subject=per, type="no.case.opened"),
            event(resource, "per-t", subject=per, type="t"),
            event(resource, "nobody", type="no.case.opened"),
        ],
    )
    await drain(stores, PIPELINE)
    assert sorted(e["id"] for e in events_received(receiver, "lists")) == ["kari-opened", "ola-closed"]
    assert [e["id"] for e in events_received(receiver, "one")] == ["per-t"]


REFUSED = [
    ({"subjectFilter": ""}, "subjectFilter must not be empty"),
    ({"typeFilter": ""}, "typeFilter must not be empty"),
    ({"subjectFilter": []}, "at least 1 item"),
    ({"typeFilter": []}, "at least 1 item"),
    ({"typeFilter": [f"t{n}" for n in range(51)]}, "at most 50 items"),
    ({"subjectFilter": "*"}, "subjectFilter is matched exactly and takes no '*'"),
    ({"subjectFilter": ["person:1", "person:*"]}, "subjectFilter is matched exactly and takes no '*'"),
    ({"alternativeSubjectFilter": "*"}, "alternativeSubjectFilter is matched exactly"),
    ({"typeFilter": ["no.case.*", "*"]}, "'*' in typeFilter matches every event"),
    ({"typeFilter": ["no.case", ""]}, "typeFilter must not be empty"),
    ({"typeFilter": "no.*.opened"}, "'*' only at the end"),
    ({"sourceFilter": "urn:a b"}, "an event source is a URI-reference without spaces"),
    ({"subjectFilter": "person:1\n"}, "can never match"),
    ({"includeSubunits": True}, "includeSubunits needs a subjectFilter naming organisations"),
    ({"includeSubunits": True, "subjectFilter": "person:01017012343"}, "only an organisation has subunits"),
    ({"includeSubunits": True, "subjectFilter": ["org:991825827", "person:1"]}, "only an organisation"),
]


@pytest.mark.parametrize(("filters", "detail"), REFUSED, ids=[str(f) for f, _ in REFUSED])
async def test_a_filter_that_could_never_match_is_refused_and_nothing_is_stored(
    client, issuer, receiver, resource, filters, detail
):
    consumer = random_org()
    response = await client.post(
        "/api/v1/subscriptions",
        json={"endPoint": receiver.url("never"), "resourceFilter": resource, **filters},
        headers=issuer.headers(*SUBSCRIBE, sub=consumer),
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert detail in response.json()["detail"]
    listed = await client.get("/api/v1/subscriptions", headers=issuer.headers(*SUBSCRIBE, sub=consumer))
    assert listed.json()["subscriptions"] == []
    assert receiver.received == {}  # no validation event either


def organisation() -> str:
    return random_org().removeprefix("org:")


async def test_include_subunits_matches_a_subunits_events_through_the_registry(
    client, issuer, receiver, resource, stores
):
    main, subunit, unrelated, foreign_subunit, foreign_main = (organisation() for _ in range(5))
    loaded = await client.put(
        "/api/v1/admin/contacts/organizations",
        json={
            "organizations": [
                {"organizationNumber": main, "name": "Hovedenhet AS"},
                {"organizationNumber": subunit, "name": "Avdeling Bergen", "parentOrganizationNumber": main},
                {"organizationNumber": unrelated, "name": "Annen AS"},
                {"organizationNumber": foreign_subunit, "parentOrganizationNumber": foreign_main},
            ]
        },
        headers=issuer.headers("admin", sub="system:herald-admin"),
    )
    assert loaded.status_code == 200, loaded.text
    shown = await client.get(
        f"/api/v1/admin/contacts/organizations/{subunit}", headers=issuer.headers("admin", sub="system:herald-admin")
    )
    assert shown.json()["parentOrganizationNumber"] == main

    wide = await active_subscription(
        client,
        issuer,
        stores,
        {
            "endPoint": receiver.url("wide"),
            "resourceFilter": resource,
            "subjectFilter": f"org:{main}",
            "includeSubunits": True,
        },
    )
    assert wide["includeSubunits"] is True
    await active_subscription(
        client,
        issuer,
        stores,
        {"endPoint": receiver.url("narrow"), "resourceFilter": resource, "subjectFilter": f"org:{main}"},
    )
    await publish(
        client,
        issuer.headers("events.publish"),
        [
            event(resource, "main", subject=f"org:{main}"),
            event(resource, "subunit", subject=f"org:{subunit}"),
            event(resource, "unrelated", subject=f"org:{unrelated}"),
            event(resource, "foreign-subunit", subject=f"org:{foreign_subunit}"),
            event(resource, "unknown-org", subject=f"org:{organisation()}"),
            event(resource, "a-person", subject=random_person()),
        ],
    )
    await drain(stores, PIPELINE)
    assert sorted(e["id"] for e in events_received(receiver, "wide")) == ["main", "subunit"]
    assert [e["id"] for e in events_received(receiver, "narrow")] == ["main"]


async def test_a_subscription_stored_before_lists_and_subunits_still_reads_matches_and_changes(
    client, issuer, receiver, resource, settings, stores
):
    """Written as the store wrote it before: no list, subunit, home or away columns."""
    consumer, subject = random_org(), random_person()
    subscription_id = f"sub_{uuid.uuid4().hex}"
    endpoint = receiver.url("stored-before")
    filters = Filters(resource=resource, subject=subject, type="no.case.opened")
    identity = identity_hash(consumer, endpoint, filters)
    created = datetime.now(UTC)
    list_key = f"s:{created.strftime('%Y%m%d%H%M%S%f')}:{subscription_id}"
    index_key = f"{resource}|s:{subject}"
    box = LocalSecretBox.from_file(settings.secret_key_path)
    service = TableServiceClient.from_connection_string(settings.storage_connection_string)
    async with service:
        await service.get_table_client("subscriptions").create_entity(
            {
                "PartitionKey": index_key,
                "RowKey": subscription_id,
                "consumer": consumer,
                "endpoint": endpoint,
                "resource": resource,
                "subject": subject,
                "type": "no.case.opened",
                "status": "active",
                "created": created,
                "secret": await box.seal("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", bound_to=subscription_id),
            }
        )
        owners = service.get_table_client("subscriptionowners")
        await owners.create_entity({"PartitionKey": consumer, "RowKey": f"h:{identity}", "id": subscription_id})
        await owners.create_entity(
            {
                "PartitionKey": consumer,
                "RowKey": f"i:{subscription_id}",
                "indexKey": index_key,
                "listKey": list_key,
                "identity": identity,
            }
        )
        await owners.create_entity(
            {"PartitionKey": consumer, "RowKey": list_key, "id": subscription_id, "indexKey": index_key}
        )
    headers = issuer.headers(*SUBSCRIBE, sub=consumer)

    fetched = (await client.get(f"/api/v1/subscriptions/{subscription_id}", headers=headers)).json()
    assert (fetched["subjectFilter"], fetched["typeFilter"], fetched["includeSubunits"]) == (
        subject,
        "no.case.opened",
        False,
    )
    again = await client.post(
        "/api/v1/subscriptions",
        json={
            "endPoint": endpoint,
            "resourceFilter": resource,
            "subjectFilter": subject,
            "typeFilter": "no.case.opened",
        },
        headers=headers,
    )
    assert again.status_code == 200 and again.json()["id"] == subscription_id  # its stored identity still holds

    await publish(
        client,
        issuer.headers("events.publish"),
        [event(resource, "opened", subject=subject, type="no.case.opened"), event(resource, "x", subject=subject)],
    )
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "stored-before")] == ["opened"]

    changed = await client.patch(
        f"/api/v1/subscriptions/{subscription_id}",
        json={"typeFilter": ["no.case.opened", "no.case.closed"], "subjectFilter": [subject, random_person()]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    await publish(
        client, issuer.headers("events.publish"), [event(resource, "closed", subject=subject, type="no.case.closed")]
    )
    await drain(stores, PIPELINE)
    assert [e["id"] for e in events_received(receiver, "stored-before")] == ["opened", "closed"]

    assert (await client.delete(f"/api/v1/subscriptions/{subscription_id}", headers=headers)).status_code == 204
    assert (await client.get("/api/v1/subscriptions", headers=headers)).json()["subscriptions"] == []


def test_one_value_hashes_as_before_and_a_list_hashes_in_one_order():
    """Identity hashes are stored: a filter of one value must hash exactly as before lists existed."""
    before = json.dumps(["org:1", "https://x", "urn:r", None, "person:1", None, "t"])
    import hashlib

    assert (
        identity_hash("org:1", "https://x", Filters("urn:r", subject="person:1", type="t"))
        == (hashlib.sha256(before.encode()).hexdigest()[:40])
    )
    assert identity_hash("org:1", "https://x", Filters("urn:r", subject=("b", "a"))) == identity_hash(
        "org:1", "https://x", Filters("urn:r", subject=("a", "b", "a"))
    )


values = st.sampled_from(["a", "ab", "org:1", "org:2", "person:1"])


@examples(max_examples=500, deadline=None)
@given(
    subjects=st.none() | st.lists(values, min_size=1, max_size=3),
    alternative=st.none() | values,
    types=st.none() | st.lists(values.map(lambda v: v + "*") | values, min_size=1, max_size=3),
    subunits=st.booleans(),
    event_subject=st.none() | values,
    event_alternative=st.none() | values,
    event_type=values,
    parent=st.none() | st.sampled_from(["org:1", "org:2"]),
)
def test_the_index_reaches_every_subscription_a_list_or_a_main_unit_matches(
    subjects, alternative, types, subunits, event_subject, event_alternative, event_type, parent
):
    try:
        filters = Filters(
            "urn:r",
            subject=tuple(subjects) if subjects else None,
            alternativesubject=alternative,
            type=tuple(types) if types else None,
            include_subunits=subunits,
        )
    except FilterProblem:
        assume(False)
    attributes = {"resource": "urn:r", "type": event_type}
    if event_subject is not None:
        attributes["subject"] = event_subject
    if event_alternative is not None:
        attributes["alternativesubject"] = event_alternative
    read = index_keys_for_event(attributes) + ([parent_index_key("urn:r", parent)] if parent else [])
    if filters.matches(attributes, parent):
        assert set(filters.match_keys()) & set(read)
        assert any(matches_pattern(t, event_type) for t in filters.types) or filters.type is None
