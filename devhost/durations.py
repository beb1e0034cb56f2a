"""The two duration notations devhost reads: ISO 8601 (ARM/Bicep) and .NET TimeSpan (host.json)."""

from __future__ import annotations

import re
from datetime import timedelta

import isodate

# [-][d.]hh:mm:ss[.fffffff], as .NET's TimeSpan.Parse accepts it in host.json.
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")


def parse_iso8601_duration(text: str) -> timedelta:
    """``PT1M``, ``PT5M``, ``P7D``, ``P1DT2H``: a fixed, non-negative length of time.

    Years and months are refused: their length depends on the date, and ARM rejects them for
    Service Bus time spans as well.
    """
    not_a_duration = f"{text!r} is not an ISO 8601 duration (for example PT1M)"
    if not any(character.isdigit() for character in text):  # isodate reads a bare "PT" as zero
        raise ValueError(not_a_duration)
    try:
        duration = isodate.parse_duration(text.strip())
    except (isodate.ISO8601Error, ValueError) as exc:
        raise ValueError(not_a_duration) from exc
    if not isinstance(duration, timedelta):
        raise ValueError(f"{text!r}: years and months have no fixed length; use days (P30D)")
    if duration < timedelta(0):
        raise ValueError(f"{text!r} is negative")
    return duration


def is_timespan(text: str) -> bool:
    return _TIMESPAN.match(text.strip()) is not None


def parse_timespan(text: str) -> timedelta:
    """``00:05:00``, ``1.00:00:00``, ``00:00:00.5``; a leading ``-`` gives a negative span."""
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a TimeSpan ([d.]hh:mm:ss)")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds) > 59:
        raise ValueError(f"{text!r} is not a TimeSpan: hours < 24, minutes and seconds < 60")
    span = timedelta(
        days=int(days or 0),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        microseconds=round(int((fraction or "0").ljust(7, "0")) / 10),
    )
    return -span if sign else span
