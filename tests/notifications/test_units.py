"""Pure rules: the state machine, templates, SMS segments, the daytime window."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.notifications.config import NotificationConfig
from shared.notifications.model import Channel, ContentType, EmailTemplate, Status
from shared.notifications.status import TRANSITIONS, can_move, event_type, is_final
from shared.notifications.templates import render_email, sms_length
from shared.notifications.timing import in_daytime, next_daytime


def test_status_only_moves_forward():
    assert can_move(Channel.EMAIL, Status.SUCCEEDED, Status.DELIVERED)
    assert not can_move(Channel.EMAIL, Status.DELIVERED, Status.FAILED_BOUNCED)
    assert not can_move(Channel.EMAIL, Status.DELIVERED, Status.DELIVERED)
    assert not can_move(Channel.SMS, Status.ACCEPTED, Status.SENDING)
    assert not can_move(Channel.EMAIL, Status.SUCCEEDED, Status.SENDING)
    for table in TRANSITIONS.values():
        for source, targets in table.items():
            assert source not in targets
    assert is_final(Channel.SMS, Status.FAILED_TTL) and not is_final(Channel.SMS, Status.ACCEPTED)
    assert event_type(Channel.SMS, Status.ACCEPTED) == "herald.notification.sms.accepted"
    assert event_type(Channel.EMAIL, Status.FAILED_TTL) == "herald.notification.email.failed.ttl"


def test_segments():
    assert sms_length("a" * 160).segments == 1
    assert sms_length("a" * 161).segments == 2
    assert sms_length("€" * 80).units == 160
    assert sms_length("ł" * 70).segments == 1 and sms_length("ł" * 71).segments == 2
    assert sms_length("😀" * 35).units == 70


def test_html_bodies_escape_keyword_values_only():
    rendered = render_email(
        EmailTemplate("Hi $recipientName$", "<p>$recipientName$</p>", ContentType.HTML), "<A&B>", "1"
    )
    assert rendered.subject == "Hi <A&B>"
    assert rendered.body == "<p>&lt;A&amp;B&gt;</p>"


def test_daytime_window_in_oslo():
    config = NotificationConfig()
    assert in_daytime(datetime(2026, 6, 1, 7, 0, tzinfo=UTC), config)  # 09:00 CEST
    assert not in_daytime(datetime(2026, 6, 1, 15, 0, tzinfo=UTC), config)  # 17:00 CEST
    assert next_daytime(datetime(2026, 6, 1, 16, 0, tzinfo=UTC), config) == datetime(2026, 6, 2, 7, 0, tzinfo=UTC)


def test_an_email_address_with_a_trailing_line_break_is_not_an_address():
    from shared.notifications.recipients import valid_email

    assert valid_email("ola@example.no")
    assert not valid_email("ola@example.no\n")
    assert not valid_email("ola@example.no\r\nBcc: all@example.no")
