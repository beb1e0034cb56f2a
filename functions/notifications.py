"""Notification triggers: order start, email/SMS sending, and the due and expiry timers."""

import logging

import azure.functions as func

from shared.composition.root import services
from shared.notifications.messages import EMAIL_QUEUE, ORDERS_QUEUE, SMS_QUEUE, SendBatch, StartOrder
from shared.notifications.model import Channel

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("notifications_orders")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=ORDERS_QUEUE, connection="ServiceBusConnection")
async def notifications_orders(message: func.ServiceBusMessage) -> None:
    await (await services()).notifications.starting.start(StartOrder.decode(message.get_body()))


@bp.function_name("notifications_email")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=EMAIL_QUEUE, connection="ServiceBusConnection")
async def notifications_email(message: func.ServiceBusMessage) -> None:
    await (await services()).notifications.sending.send(Channel.EMAIL, SendBatch.decode(message.get_body()))


@bp.function_name("notifications_sms")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=SMS_QUEUE, connection="ServiceBusConnection")
async def notifications_sms(message: func.ServiceBusMessage) -> None:
    await (await services()).notifications.sending.send(Channel.SMS, SendBatch.decode(message.get_body()))


@bp.function_name("notifications_due")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *")
async def notifications_due(timer: func.TimerRequest) -> None:
    started = await (await services()).notifications.starting.enqueue_due()
    if started:
        log.info("due orders enqueued", extra={"orders": started})


@bp.function_name("notifications_expiry")
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
async def notifications_expiry(timer: func.TimerRequest) -> None:
    expired = await (await services()).notifications.expiry.expire()
    if expired:
        log.warning("notifications expired (Failed_TTL)", extra={"notifications": expired})
