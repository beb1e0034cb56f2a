"""Timers: the outbox sweep (every minute) and the retention sweep (nightly)."""

import logging
from datetime import UTC, datetime, timedelta

import azure.functions as func

from shared.container import services
from shared.events.maintenance import apply_retention, sweep_outbox

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("outbox_sweep")
@bp.timer_trigger(arg_name="timer", schedule="0 * * * * *")
async def outbox_sweep(timer: func.TimerRequest) -> None:
    herald = await services()
    swept = await sweep_outbox(herald.outbox_sweeper, herald.checkpoints, datetime.now(UTC))
    if swept:
        log.warning("outbox sweep re-dispatched rows", extra={"entries": swept})
    # Notification status events wait in their own outbox (the notifications table), with the same grace.
    grace = timedelta(seconds=herald.settings.outbox_grace_seconds)
    owed = await herald.notifications.processor.publish_owed(grace)
    if owed:
        log.warning("outbox sweep published owed notification status events", extra={"entries": owed})


@bp.function_name("event_retention")
@bp.timer_trigger(arg_name="timer", schedule="0 30 2 * * *")
async def event_retention(timer: func.TimerRequest) -> None:
    herald = await services()
    retention = timedelta(days=herald.settings.event_retention_days)
    removed = await apply_retention(herald.event_log, datetime.now(UTC), retention)
    log.info("retention sweep finished", extra={"events_removed": removed})


@bp.function_name("delivery_log_retention")
@bp.timer_trigger(arg_name="timer", schedule="0 45 2 * * *")
async def delivery_log_retention(timer: func.TimerRequest) -> None:
    dropped = await (await services()).delivery_log.expire(datetime.now(UTC))
    log.info("delivery log retention finished", extra={"day_tables_dropped": dropped})
