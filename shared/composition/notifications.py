"""Builds notifications: the email and SMS senders (Communication Services, the Link gateway, or the
local sink), the contact registry, the stores and the use cases over them."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.clock import Clock, SystemClock
from shared.messaging import Bus
from shared.notifications.config import NotificationSettings, load_notification_settings
from shared.notifications.contacts import ContactAdmin
from shared.notifications.expiry import Expiry
from shared.notifications.limits import OrderLimiter
from shared.notifications.orders import OrderService
from shared.notifications.ports import (
    ContactRegistry,
    EmailSender,
    RecipientAuthorizer,
    RegistryRoleAuthorizer,
    SmsSender,
)
from shared.notifications.records import OrderRecords
from shared.notifications.reports import DeliveryReports
from shared.notifications.senders import SenderGrantAdmin, SenderPolicy
from shared.notifications.sending import BatchSender
from shared.notifications.service import Notifications
from shared.notifications.starting import OrderStarter
from shared.notifications.status_events import HubStatusEvents, StatusOutbox

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.config import Settings
    from shared.events.publishing import EventPublisher
    from shared.identity.authorization import Authorizer


def build_notifications(
    config: Settings,
    tables: TableServiceClient,
    bus: Bus,
    publisher: EventPublisher,
    *,
    settings: NotificationSettings | None = None,
    clock: Clock | None = None,
    email: EmailSender | None = None,
    sms: SmsSender | None = None,
    registry: ContactRegistry | None = None,
    authorizer: RecipientAuthorizer | None = None,
    sink: Any = None,
    publishing: Authorizer,
) -> Notifications:
    """``publishing`` decides who may publish into a resource (the one ``POST /api/v1/events`` asks):
    an order's resourceId is where its status events are published."""
    from shared.adapters.acs_reports import read_event_report
    from shared.adapters.http_notification_condition import HttpConditionChecker
    from shared.adapters.link_sms import read_reports
    from shared.adapters.table_contacts import TableContactRegistry
    from shared.adapters.table_dead_reports import TableDeadReports
    from shared.adapters.table_notifications import TableNotificationStore
    from shared.adapters.table_order_governance import TableSenderGrants, TableUsageStore
    from shared.adapters.table_orders import TableOrderStore
    from shared.adapters.table_send_pause import TableSendPause
    from shared.endpoint_policy import EndpointPolicy

    settings = settings or load_notification_settings()
    clock = clock or SystemClock()
    if sink is None and (email is None or sms is None) and config.local and not settings.acs_configured:
        from shared.adapters.local_sink import LocalSink, http_poster

        sink = LocalSink(
            http_poster(settings.local_eventgrid_url, settings.local_eventgrid_key), delay=settings.local_report_delay
        )
    if email is None:
        if sink is not None:
            email = sink.email
        else:
            from shared.adapters.acs_email import AcsEmailSender, acs_credential

            email = AcsEmailSender(*acs_credential(settings))
    if sms is None:
        gateway = settings.sms_gateway or ("local" if sink is not None else "acs")
        if gateway == "link":
            from shared.adapters.link_sms import LinkSmsSender

            if not (settings.link_url and settings.link_username and settings.link_password):
                raise RuntimeError("HERALD_SMS_GATEWAY=link needs HERALD_LINK_SMS_URL, _USERNAME and _PASSWORD")
            sms = LinkSmsSender(
                settings.link_url, settings.link_username, settings.link_password, format=settings.link_format
            )
        elif gateway == "local" and sink is not None:
            sms = sink.sms
        else:
            from shared.adapters.acs_email import acs_credential
            from shared.adapters.acs_sms import AcsSmsSender

            sms = AcsSmsSender(*acs_credential(settings))
    contacts = TableContactRegistry(tables)
    if registry is None:
        if settings.registry_url:
            from shared.adapters.contact_registry_http import HttpContactRegistry

            registry = HttpContactRegistry.from_settings(settings)
        else:
            registry = contacts
    authorizer = authorizer or RegistryRoleAuthorizer()
    orders = TableOrderStore(tables)
    notifications = TableNotificationStore(tables)
    cfg = settings.config
    sender_grants = TableSenderGrants(tables)
    # Condition endpoints are callers' URLs: the webhooks' endpoint policy, at order time and at connection.
    endpoints = EndpointPolicy(local_mode=config.local)
    outbox = StatusOutbox(
        notifications,
        HubStatusEvents(publisher, clock, cfg.default_resource),
        clock,
        grace=timedelta(seconds=config.outbox_grace_seconds),
    )
    records = OrderRecords(orders=orders, notifications=notifications, clock=clock, config=cfg, outbox=outbox)
    return Notifications(
        settings=settings,
        orders=OrderService(
            records,
            registry=registry,
            authorizer=authorizer,
            bus=bus,
            endpoints=endpoints,
            publishing=publishing,
            senders=SenderPolicy(cfg, sender_grants),
            limiter=OrderLimiter(TableUsageStore(tables), settings.limits),
        ),
        starting=OrderStarter(
            records,
            registry=registry,
            authorizer=authorizer,
            conditions=HttpConditionChecker(endpoints=endpoints),
            bus=bus,
        ),
        sending=BatchSender(records, email=email, sms=sms, pause=TableSendPause(tables), bus=bus),
        reports=DeliveryReports(
            records, dead_reports=TableDeadReports(tables), read_event=read_event_report, read_gateway=read_reports
        ),
        expiry=Expiry(records),
        status_outbox=outbox,
        sender_grants=SenderGrantAdmin(sender_grants),
        contacts=ContactAdmin(contacts),
        registry=registry,
        dev_outbox=sink,
        closables=(email, sms),
    )
