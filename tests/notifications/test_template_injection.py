"""Templates are filled once, and an email subject stays one line: a contact name or an event value
can neither pull in another keyword's value nor start a new header line."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.api.subscription_schemas import NotificationIn
from shared.notifications.event_orders import order_for_event
from shared.notifications.model import ContentType, EmailTemplate, SmsTemplate
from shared.notifications.templates import render_email, render_sms

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What ends a header line somewhere between Herald and a mail client, and the other control characters.
BREAKS = ["\r", "\n", "\r\n", "\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x00", "\x1b", "\x7f", "\x9b"]
NOT_IN_A_SUBJECT = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | {"\u2028", "\u2029"}


def test_a_contact_name_with_line_breaks_does_not_add_a_header():
    template = EmailTemplate("Hello $recipientName$", "Dear $recipientName$")
    for brk in BREAKS:
        email = render_email(template, f"Kari{brk}Bcc: victim@example.com", None)
        assert email.subject == "Hello Kari Bcc: victim@example.com", repr(brk)
        assert email.body == f"Dear Kari{brk}Bcc: victim@example.com"  # bodies keep what the name holds


def test_the_template_subject_itself_is_one_line():
    assert render_email(EmailTemplate("Line one\r\nX-Injected: yes\u2028", "b"), None, None).subject == (
        "Line one X-Injected: yes"
    )


def test_a_name_holding_a_keyword_is_sent_as_written():
    template = EmailTemplate("$recipientName$ ($recipientNumber$)", "$recipientName$", ContentType.HTML)
    email = render_email(template, "Acme $recipientNumber$ AS", "991825827")
    assert email.subject == "Acme $recipientNumber$ AS (991825827)"
    assert email.body == "Acme $recipientNumber$ AS"
    assert render_sms(SmsTemplate("Hi $recipientName$"), "$recipientNumber$", "123") == "Hi $recipientNumber$"


EVENT = {
    "specversion": "1.0",
    "id": "SIG-9",
    "source": "urn:no:kommune:signalen:backend",
    "type": "signal.status.changed",
    "resource": "urn:no:kommune:signalen",
    "subject": "person:01019010046",
    "data": {"title": "Pay $recipientName$ now\u2028Bcc: victim@example.com", "code": "$data.title$"},
}


def _spec():
    return NotificationIn.model_validate(
        {
            "notificationChannel": "EmailAndSms",
            "emailTemplate": {"subject": "$data.title$ for $recipientName$", "body": "$data.title$|$data.code$"},
            "smsTemplate": {"body": "$recipientName$: $data.title$ $data.code$"},
        }
    ).spec()


def test_event_values_are_not_filled_again_at_send_time():
    request = order_for_event("sub_1", _spec(), EVENT)
    assert request.email_template is not None and request.sms_template is not None
    email = render_email(request.email_template, "Kari Nordmann", None)
    assert email.subject == "Pay $recipientName$ now Bcc: victim@example.com for Kari Nordmann"
    assert email.body == "Pay $recipientName$ now\u2028Bcc: victim@example.com|$data.title$"
    sms = render_sms(request.sms_template, "Kari Nordmann", None)
    assert sms == "Kari Nordmann: Pay $recipientName$ now\u2028Bcc: victim@example.com $data.title$"


keyword_text = st.lists(
    st.sampled_from(["$recipientName$", "$recipientNumber$", "$data.title$", "$", "a", " ", *BREAKS]), max_size=12
).map("".join)


@EXAMPLES
@given(name=keyword_text, number=keyword_text)
def test_a_recipient_value_arrives_exactly_as_written(name, number):
    template = EmailTemplate("s", "<$recipientName$|$recipientNumber$>")
    assert render_email(template, name, number).body == f"<{name}|{number}>"


@EXAMPLES
@given(subject=keyword_text, name=keyword_text, title=keyword_text)
def test_no_subject_ever_holds_a_line_break_or_control_character(subject, name, title):
    template = EmailTemplate(subject + "$recipientName$$data.title$", "b", values={"data.title": title})
    rendered = render_email(template, name, None).subject
    assert not set(rendered) & NOT_IN_A_SUBJECT, repr(rendered)
