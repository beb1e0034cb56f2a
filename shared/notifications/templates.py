"""Templates: keyword filling and SMS segment rules.

Keywords (case-sensitive, as in Altinn): ``$recipientName$`` (the person's or organisation's name)
and ``$recipientNumber$`` (the organisation number; empty for persons and direct addresses).
Values are HTML-escaped in HTML bodies, never elsewhere.

SMS length: a message is refused at order time when it needs more than ``MAX_SMS_SEGMENTS``
segments, never cut. GSM-7 text: 160 septets in one segment, 153 per segment when concatenated;
the GSM-7 extension characters (``^{}\\[~]|€`` and form feed) take two septets. Any other character
makes the whole message UCS-2: 70 UTF-16 code units in one segment, 67 per concatenated segment.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from shared.notifications.model import ContentType, EmailTemplate, SmsTemplate

NAME_KEYWORD = "$recipientName$"
NUMBER_KEYWORD = "$recipientNumber$"
MAX_SMS_SEGMENTS = 16

_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
_GSM_BASIC_SET = frozenset(_GSM_BASIC)
_GSM_EXTENDED_SET = frozenset(_GSM_EXTENDED)


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # GSM-7 | UCS-2
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def sms_length(text: str) -> SmsLength:
    if all(ch in _GSM_BASIC_SET or ch in _GSM_EXTENDED_SET for ch in text):
        units = sum(2 if ch in _GSM_EXTENDED_SET else 1 for ch in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(text.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else math.ceil(units / multi)
    return SmsLength(encoding, units, segments)


def fill(text: str, name: str | None, number: str | None, *, escape: bool = False) -> str:
    def value(raw: str | None) -> str:
        return html.escape(raw or "", quote=True) if escape else (raw or "")

    return text.replace(NAME_KEYWORD, value(name)).replace(NUMBER_KEYWORD, value(number))


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str
    content_type: ContentType


def render_email(template: EmailTemplate, name: str | None, number: str | None) -> RenderedEmail:
    html_body = template.content_type is ContentType.HTML
    return RenderedEmail(
        subject=fill(template.subject, name, number),
        body=fill(template.body, name, number, escape=html_body),
        content_type=template.content_type,
    )


def render_sms(template: SmsTemplate, name: str | None, number: str | None) -> str:
    return fill(template.body, name, number)
