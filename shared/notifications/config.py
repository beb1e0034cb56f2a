"""Notification settings, read by name from the environment (documented in local.settings.sample.json)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.config import read_secret
from shared.notifications.limits import Limits
from shared.urns import NOTIFICATIONS_URN


@dataclass(frozen=True)
class NotificationConfig:
    """Knobs of the domain; defaults are the documented production values."""

    email_sender: str = "noreply@herald.local"
    sms_sender: str = "Herald"
    # A notification still not final this long after its send time becomes Failed_TTL.
    ttl: timedelta = timedelta(hours=48)
    # Notifications per queue message (and per entity-group transaction).
    batch_size: int = 100
    # Delays before the 2nd, 3rd, ... send attempt after a transient failure; then Failed.
    retry_delays: tuple[timedelta, ...] = (
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=30),
    )
    # Send attempts after 429s before a notification gives up (throttles do not use retry_delays).
    max_throttled_attempts: int = 20
    default_retry_after: timedelta = timedelta(seconds=60)
    condition_retry_delay: timedelta = timedelta(minutes=1)
    # An order still Processing this long after it started is picked up again by the due timer.
    processing_timeout: timedelta = timedelta(minutes=10)
    # An early delivery report is retried (the trigger raises) at most this often / this long, then parked.
    report_max_attempts: int = 5
    report_window: timedelta = timedelta(minutes=15)
    # How far past its send time the due timer waits before it re-enqueues an order (the delayed
    # message normally starts it on time).
    due_grace: timedelta = timedelta(seconds=60)
    daytime_start_hour: int = 9
    daytime_end_hour: int = 17
    daytime_zone: str = "Europe/Oslo"
    max_recipients: int = 10_000
    default_resource: str = NOTIFICATIONS_URN


@dataclass(frozen=True)
class NotificationSettings:
    """Which adapters to use and how to reach them."""

    config: NotificationConfig = field(default_factory=NotificationConfig)
    limits: Limits = field(default_factory=Limits)  # notifications per orderer a minute and a day
    acs_connection_string: str | None = None  # endpoint=...;accesskey=... (local fakes, emulators)
    acs_endpoint: str | None = None  # https://<acs>.communication.azure.com (identity-based, Azure)
    acs_identity: Mapping[str, str] = field(default_factory=dict)
    sms_gateway: str = ""  # acs | link | local ("" = acs when ACS is configured, else local)
    link_url: str | None = None
    link_username: str | None = None
    link_password: str | None = None
    link_format: str = "json"
    sms_report_username: str | None = None
    sms_report_password: str | None = None
    registry_url: str | None = None
    registry_authority: str | None = None
    registry_client_id: str | None = None
    registry_client_secret: str | None = None
    registry_scope: str | None = None
    local_eventgrid_url: str = "http://127.0.0.1:7071/runtime/webhooks/eventgrid"
    local_eventgrid_key: str | None = None  # the webhook's eventgrid_extension system key (devhost sets it)
    local_report_delay: float = 2.0

    @property
    def acs_configured(self) -> bool:
        return bool(self.acs_connection_string or self.acs_endpoint)


def load_notification_settings(environ: Mapping[str, str] | None = None) -> NotificationSettings:
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        return env.get(name) or None

    defaults = NotificationConfig()
    config = NotificationConfig(
        email_sender=get("HERALD_NOTIFICATIONS_EMAIL_SENDER") or defaults.email_sender,
        sms_sender=get("HERALD_NOTIFICATIONS_SMS_SENDER") or defaults.sms_sender,
    )
    marker = "HeraldCommunication__"
    identity = {key[len(marker) :]: value for key, value in env.items() if key.startswith(marker) and value}
    return NotificationSettings(
        config=config,
        limits=Limits(
            per_minute=_positive(env, "HERALD_NOTIFICATIONS_PER_MINUTE", Limits.per_minute),
            per_day=_positive(env, "HERALD_NOTIFICATIONS_PER_DAY", Limits.per_day),
        ),
        acs_connection_string=get("HeraldCommunication"),
        acs_endpoint=identity.get("endpoint"),
        acs_identity=identity,
        sms_gateway=(get("HERALD_SMS_GATEWAY") or "").lower(),
        link_url=get("HERALD_LINK_SMS_URL"),
        link_username=get("HERALD_LINK_SMS_USERNAME"),
        link_password=read_secret(env, "HERALD_LINK_SMS_PASSWORD"),
        link_format=(get("HERALD_LINK_SMS_FORMAT") or "json").lower(),
        sms_report_username=get("HERALD_SMS_REPORT_USERNAME"),
        sms_report_password=read_secret(env, "HERALD_SMS_REPORT_PASSWORD"),
        registry_url=get("HERALD_CONTACT_REGISTRY_URL"),
        registry_authority=get("HERALD_CONTACT_REGISTRY_AUTHORITY"),
        registry_client_id=get("HERALD_CONTACT_REGISTRY_CLIENT_ID"),
        registry_client_secret=read_secret(env, "HERALD_CONTACT_REGISTRY_CLIENT_SECRET"),
        registry_scope=get("HERALD_CONTACT_REGISTRY_SCOPE"),
        local_eventgrid_url=get("HERALD_LOCAL_EVENTGRID_URL") or "http://127.0.0.1:7071/runtime/webhooks/eventgrid",
        local_eventgrid_key=read_secret(env, "HERALD_LOCAL_EVENTGRID_KEY"),
        local_report_delay=float(get("HERALD_LOCAL_SINK_REPORT_DELAY_SECONDS") or 2.0),
    )


def _positive(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name) or ""
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise RuntimeError(f"{name} must be a whole number of at least 1, not {value!r}")
    return int(value)


# Every setting load_notification_settings reads; a test checks each is documented in the sample.
SETTINGS_READ = (
    "HERALD_NOTIFICATIONS_EMAIL_SENDER",
    "HERALD_NOTIFICATIONS_SMS_SENDER",
    "HERALD_NOTIFICATIONS_PER_MINUTE",
    "HERALD_NOTIFICATIONS_PER_DAY",
    "HeraldCommunication",
    "HeraldCommunication__endpoint",
    "HeraldCommunication__credential",
    "HeraldCommunication__clientId",
    "HERALD_SMS_GATEWAY",
    "HERALD_LINK_SMS_URL",
    "HERALD_LINK_SMS_USERNAME",
    "HERALD_LINK_SMS_PASSWORD",
    "HERALD_LINK_SMS_FORMAT",
    "HERALD_SMS_REPORT_USERNAME",
    "HERALD_SMS_REPORT_PASSWORD",
    "HERALD_CONTACT_REGISTRY_URL",
    "HERALD_CONTACT_REGISTRY_AUTHORITY",
    "HERALD_CONTACT_REGISTRY_CLIENT_ID",
    "HERALD_CONTACT_REGISTRY_CLIENT_SECRET",
    "HERALD_CONTACT_REGISTRY_SCOPE",
    "HERALD_LOCAL_EVENTGRID_URL",
    "HERALD_LOCAL_EVENTGRID_KEY",
    "HERALD_LOCAL_SINK_REPORT_DELAY_SECONDS",
)
