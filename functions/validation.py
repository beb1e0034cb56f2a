"""Subscription validation: a new or re-enabled subscription becomes active when its endpoint answers."""

import azure.functions as func

from shared.composition.root import services
from shared.subscriptions.messages import VALIDATION_QUEUE, ValidationMessage

bp = func.Blueprint()


@bp.function_name("subscription_validation")
@bp.service_bus_queue_trigger(arg_name="message", queue_name=VALIDATION_QUEUE, connection="ServiceBusConnection")
async def subscription_validation(message: func.ServiceBusMessage) -> None:
    await (await services()).validation.validate(ValidationMessage.model_validate_json(message.get_body()))
