"""Sending-time policy: the daytime window (09:00-17:00 Europe/Oslo by default) and expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from shared.notifications.config import NotificationConfig


def in_daytime(moment: datetime, config: NotificationConfig) -> bool:
    local = moment.astimezone(ZoneInfo(config.daytime_zone))
    return config.daytime_start_hour <= local.hour < config.daytime_end_hour


def next_daytime(moment: datetime, config: NotificationConfig) -> datetime:
    """``moment`` if it is inside the window, else the next window start (in UTC-aware form)."""
    if in_daytime(moment, config):
        return moment
    zone = ZoneInfo(config.daytime_zone)
    local = moment.astimezone(zone)
    day = local.date() if local.hour < config.daytime_start_hour else local.date() + timedelta(days=1)
    start = datetime(day.year, day.month, day.day, config.daytime_start_hour, tzinfo=zone)
    return start.astimezone(moment.tzinfo)


def expiry(send_time: datetime, daytime: bool, config: NotificationConfig) -> datetime:
    """TTL counts from when the notification may first be sent (Altinn: daytime SMS from 09:00)."""
    start = next_daytime(send_time, config) if daytime else send_time
    return start + config.ttl
