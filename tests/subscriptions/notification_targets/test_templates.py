"""Event keywords, escaping, recipients and idempotency of event-born orders (no storage)."""

from __future__ import annotations

import pytest

from shared.api.subscription_schemas import NotificationIn
from shared.notifications.event_orders import (
    NotificationSpec,
    NotNotifiable,
    fill_event,
    idempotency_id,
    keyword_values,
    order_for_event,
    spec_problems,
)
from shared.notifications.model import ContentType, NotificationChannel, RecipientSpec
from shared.notifications.templates import render_email, render_sms

EVENT = {
    "specversion": "1.0",
    "id": "SIG-1-2",
    "source": "urn:no:kommune:signalen:backend",
    "type": "signal.status.changed",
    "resource": "urn:no:kommune:signalen",
    "subject": "person:01019010046",
    "time": "2026-03-04T11:00:00Z",
    "data": {"title": "<script>alert(1)</script> & co", "count": 3, "done": False, "tags": ["a"], "none": None},
}


def spec(**overrides):
    document = {
        "notificationChannel": "EmailAndSms",
        "emailTemplate": {
            "subject": "$data.title$\n",
            "body": "<p>$data.title$ $recipientName$</p>",
            "contentType": "Html",
        },
        "smsTemplate": {"body": "$type$ $data.title$ $data.count$ $data.done$ $data.tags$ [$data.none$]"},
    }
    document.update(overrides)
    return NotificationIn.model_validate(document).spec()


def test_keywords_are_attributes_and_top_level_data_fields():
    values = keyword_values(EVENT)
    assert values["type"] == "signal.status.changed" and values["subject"] == "person:01019010046"
    assert values["data.count"] == "3" and values["data.done"] == "false" and values["data.tags"] == '["a"]'
    assert values["data.none"] == "" and "data" not in values


def test_unknown_keywords_stay_and_known_missing_ones_are_empty():
    values = keyword_values(EVENT)
    assert fill_event("$alternativesubject$|$data.missing$|$recipientName$|$nope$|5$ and 6$", values) == (
        "||$recipientName$|$nope$|5$ and 6$"
    )


def test_html_bodies_escape_event_values_and_subjects_stay_on_one_line():
    request = order_for_event("sub_1", spec(), {**EVENT, "data": {**EVENT["data"], "title": "a\r\nb <i>"}})
    assert request.email_template is not None and request.sms_template is not None
    email = render_email(request.email_template, "Kari <b>", None)
    assert email.subject == "a b <i>"  # the template's own trailing line break goes too
    assert email.body == "<p>a\r\nb &lt;i&gt; Kari &lt;b&gt;</p>"
    assert email.content_type is ContentType.HTML
    sms = order_for_event("sub_1", spec(), EVENT).sms_template
    assert sms is not None
    assert render_sms(sms, None, None) == 'signal.status.changed <script>alert(1)</script> & co 3 false ["a"] []'


def test_plain_bodies_are_not_escaped():
    plain = spec(emailTemplate={"subject": "s", "body": "$data.title$"})
    request = order_for_event("sub_1", plain, EVENT)
    assert request.email_template is not None
    assert render_email(request.email_template, None, None).body == EVENT["data"]["title"]


def test_the_order_names_the_subject_the_event_and_the_resource():
    request = order_for_event("sub_1", spec(), EVENT)
    assert request.recipients == [RecipientSpec(national_identity_number="01019010046")]
    assert request.senders_reference == "SIG-1-2"
    assert request.resource_id == "urn:no:kommune:signalen"
    assert request.idempotency_id == idempotency_id("sub_1", EVENT)
    assert request.idempotency_id != idempotency_id("sub_2", EVENT)
    assert request.idempotency_id != idempotency_id("sub_1", {**EVENT, "id": "SIG-1-3"})
    assert request.requested_send_time is None and request.channel is NotificationChannel.EMAIL_AND_SMS
    org = order_for_event("sub_1", spec(), {**EVENT, "subject": "org:991825827"})
    assert org.recipients == [RecipientSpec(organization_number="991825827")]


@pytest.mark.parametrize("subject", [None, "person:123", "org:12345678", "urn:x:y", "person:01019010046 "])
def test_events_without_a_person_or_organisation_subject_notify_nobody(subject):
    with pytest.raises(NotNotifiable):
        order_for_event("sub_1", spec(), {**EVENT, "subject": subject})


def test_herald_status_events_never_notify():
    with pytest.raises(NotNotifiable):
        order_for_event("sub_1", spec(), {**EVENT, "source": "urn:herald:notifications"})


def test_spec_round_trips_through_storage_json():
    original = spec(sendingTimePolicy="Daytime")
    assert NotificationSpec.from_json(original.to_json()) == original
    assert original.canonical() == NotificationSpec.from_json(original.to_json()).canonical()


def test_templates_are_validated_as_orders_validate_them():
    too_long = NotificationIn.model_validate({"notificationChannel": "Sms", "smsTemplate": {"body": "x" * 2449}}).spec()
    [problem] = spec_problems(too_long, "urn:no:kommune:signalen")
    assert problem.location == "notification.smsTemplate.body" and "segments" in problem.detail
    missing = NotificationIn.model_validate({"notificationChannel": "Email"}).spec()
    assert [p.location for p in spec_problems(missing, "urn:no:kommune:signalen")] == ["notification.emailTemplate"]
    sender = NotificationIn.model_validate(
        {"notificationChannel": "Email", "emailTemplate": {"subject": "s", "body": "b", "fromAddress": "nope"}}
    ).spec()
    assert [p.location for p in spec_problems(sender, "urn:no:kommune:signalen")] == [
        "notification.emailTemplate.fromAddress"
    ]
