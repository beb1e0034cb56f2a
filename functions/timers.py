"""Timers: the outbox sweeps and the ordered lanes' sweep (HERALD_SWEEP_SCHEDULE, every minute), and the retention
sweeps (nightly)."""

import logging

import azure.functions as func

from shared.composition.root import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("outbox_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%HERALD_SWEEP_SCHEDULE%")
async def outbox_sweep(timer: func.TimerRequest) -> None:
    swept = await (await services()).event_upkeep.sweep_outbox()
    if swept:
        log.warning("outbox sweep re-dispatched rows", extra={"entries": swept})


@bp.function_name("notification_outbox_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%HERALD_SWEEP_SCHEDULE%")
async def notification_outbox_sweep(timer: func.TimerRequest) -> None:
    # Notification status events wait in their own outbox (the notifications table), with the same grace.
    owed = await (await services()).notifications.status_outbox.publish_owed()
    if owed:
        log.warning("outbox sweep published owed notification status events", extra={"entries": owed})


@bp.function_name("ordered_lanes_sweep")
@bp.timer_trigger(arg_name="timer", schedule="%HERALD_SWEEP_SCHEDULE%")
async def ordered_lanes_sweep(timer: func.TimerRequest) -> None:
    # Ordered lanes whose claimed push was lost, or whose next entry waits for no one to kick it.
    swept = await (await services()).ordered_lanes.sweep()
    if swept.resent or swept.claimed:
        log.warning("ordered lanes swept", extra={"resent": swept.resent, "claimed": swept.claimed})


@bp.function_name("event_retention")
@bp.timer_trigger(arg_name="timer", schedule="0 30 2 * * *")
async def event_retention(timer: func.TimerRequest) -> None:
    removed = await (await services()).event_upkeep.apply_retention()
    log.info("retention sweep finished", extra={"events_removed": removed})


@bp.function_name("delivery_log_retention")
@bp.timer_trigger(arg_name="timer", schedule="0 45 2 * * *")
async def delivery_log_retention(timer: func.TimerRequest) -> None:
    dropped = await (await services()).subscriptions.expire_delivery_log()
    log.info("delivery log retention finished", extra={"day_tables_dropped": dropped})
