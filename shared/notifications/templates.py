"""Templates: keyword filling and SMS segment rules.

Keywords (case-sensitive, as in Altinn): ``$recipientName$`` (the person's or organisation's name)
and ``$recipientNumber$`` (the organisation number; empty for persons and direct addresses). An order
made from an event also carries the event's keyword values with its templates
(``shared.notifications.event_orders``). Each template is filled once, at send time, from all its
values together: a value is never read for keywords again, so a contact name or event field that
contains ``$recipientName$`` arrives as written. Values are HTML-escaped in HTML bodies, never
elsewhere. An email subject is one line: control characters and line or paragraph separators (CR,
LF, NEL, U+2028, U+2029) become a space, whether they came from a value or from the template.

SMS length: a message is refused at order time when it needs more than ``MAX_SMS_SEGMENTS``
segments, never cut. GSM-7 text: 160 septets in one segment, 153 per segment when concatenated;
the GSM-7 extension characters (``^{}\\[~]|€`` and form feed) take two septets. Any other character
makes the whole message UCS-2: 70 UTF-16 code units in one segment, 67 per concatenated segment.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from shared.notifications.model import ContentType, EmailTemplate, SmsTemplate

RECIPIENT_KEYWORDS = ("recipientName", "recipientNumber")
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


# C0 and C1 controls (NEL, U+0085, among them), DEL, and the Unicode line and paragraph separators.
_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def single_line(text: str) -> str:
    """``text`` as one header line: each run of control characters or line breaks becomes a space."""
    return _NOT_ONE_LINE.sub(" ", text).strip()


def fill(text: str, values: Mapping[str, str], *, escape: bool = False) -> str:
    """Replaces each ``$name$`` for a name in ``values`` in one pass over ``text``; what a value
    brings in is never searched for keywords. Any other ``$…$`` text stays as written."""
    if not values:
        return text
    names = "|".join(re.escape(name) for name in sorted(values, key=len, reverse=True))

    def value(match: re.Match[str]) -> str:
        raw = values[match.group(1)]
        return html.escape(raw, quote=True) if escape else raw

    return re.sub(rf"\$({names})\$", value, text)


def _values(carried: Mapping[str, str], name: str | None, number: str | None) -> dict[str, str]:
    """What a template is filled from: the values it carries (an event's) and the recipient's."""
    return {**carried, **dict(zip(RECIPIENT_KEYWORDS, (name or "", number or ""), strict=True))}


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body: str
    content_type: ContentType


def render_email(template: EmailTemplate, name: str | None, number: str | None) -> RenderedEmail:
    values = _values(template.values, name, number)
    return RenderedEmail(
        subject=single_line(fill(template.subject, values)),
        body=fill(template.body, values, escape=template.content_type is ContentType.HTML),
        content_type=template.content_type,
    )


def render_sms(template: SmsTemplate, name: str | None, number: str | None) -> str:
    return fill(template.body, _values(template.values, name, number))
