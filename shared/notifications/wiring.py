"""Builds the notification feature from settings: the adapters are chosen here, nowhere else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.messaging import Bus
from shared.notifications.config import NotificationSettings, load_notification_settings
from shared.notifications.events import HubStatusEvents
from shared.notifications.limits import OrderLimiter
from shared.notifications.orders import OrderService
from shared.notifications.ports import (
    Clock,
    ContactRegistry,
    EmailSender,
    RecipientAuthorizer,
    RegistryRoleAuthorizer,
    SmsSender,
    SystemClock,
)
from shared.notifications.processing import Processor
from shared.notifications.senders import SenderPolicy
from shared.notifications.service import Notifications

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient

    from shared.config import Settings
    from shared.events.publishing import EventPublisher
    from shared.identity.authorization import Authorizer


def _acs_credential(settings: NotificationSettings) -> tuple[str, Any]:
    from azure.core.credentials import AzureKeyCredential

    if settings.acs_connection_string:
        from shared.adapters.acs_email import parse_connection_string

        endpoint, key = parse_connection_string(settings.acs_connection_string)
        return endpoint, AzureKeyCredential(key)
    from shared.adapters.identity import credential_for
    from shared.config import Connection

    assert settings.acs_endpoint is not None
    connection = Connection("HeraldCommunication", None, dict(settings.acs_identity))
    return settings.acs_endpoint, credential_for(connection)


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
    from shared.adapters.http_notification_condition import HttpConditionChecker
    from shared.adapters.table_contacts import TableContactRegistry
    from shared.adapters.table_notifications import (
        TableDeadReports,
        TableNotificationStore,
        TableOrderStore,
        TableSendPause,
    )
    from shared.adapters.table_order_governance import TableSenderGrants, TableUsageStore
    from shared.subscriptions.endpoint_policy import EndpointPolicy

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
            from shared.adapters.acs_email import AcsEmailSender

            email = AcsEmailSender(*_acs_credential(settings))
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
            from shared.adapters.acs_sms import AcsSmsSender

            sms = AcsSmsSender(*_acs_credential(settings))
    contacts = TableContactRegistry(tables)
    if registry is None:
        if settings.registry_url:
            from shared.adapters.contact_registry_http import HttpContactRegistry
            from shared.adapters.entra_tokens import MsalTokenProvider

            if not (
                settings.registry_authority
                and settings.registry_client_id
                and settings.registry_client_secret
                and settings.registry_scope
            ):
                raise RuntimeError(
                    "the HTTP contact registry needs HERALD_CONTACT_REGISTRY_AUTHORITY, _CLIENT_ID, _CLIENT_SECRET, _SCOPE"
                )
            tokens = MsalTokenProvider(
                authority=settings.registry_authority,
                client_id=settings.registry_client_id,
                client_secret=settings.registry_client_secret,
                scope=settings.registry_scope,
            )
            registry = HttpContactRegistry(settings.registry_url, tokens)
        else:
            registry = contacts
    authorizer = authorizer or RegistryRoleAuthorizer()
    orders = TableOrderStore(tables)
    notifications = TableNotificationStore(tables)
    dead_reports = TableDeadReports(tables)
    cfg = settings.config
    sender_grants = TableSenderGrants(tables)
    # Condition endpoints are callers' URLs: the webhooks' endpoint policy, at order time and at connection.
    endpoints = EndpointPolicy(local_mode=config.local)
    processor = Processor(
        orders=orders,
        notifications=notifications,
        registry=registry,
        authorizer=authorizer,
        bus=bus,
        clock=clock,
        config=cfg,
        email=email,
        sms=sms,
        conditions=HttpConditionChecker(endpoints=endpoints),
        pause=TableSendPause(tables),
        dead_reports=dead_reports,
        events=HubStatusEvents(publisher, clock, cfg.default_resource),
    )
    return Notifications(
        settings=settings,
        orders=OrderService(
            orders,
            notifications,
            registry,
            authorizer,
            bus,
            clock,
            cfg,
            endpoints=endpoints,
            publishing=publishing,
            senders=SenderPolicy(cfg, sender_grants),
            limiter=OrderLimiter(TableUsageStore(tables), settings.limits),
        ),
        processor=processor,
        dead_reports=dead_reports,
        email=email,
        sms=sms,
        contacts=contacts,
        sink=sink,
        sender_grants=sender_grants,
    )
