"""Queue names: one per pipeline stage; triggers and senders both use these names."""

from shared.events.dispatch import INBOUND_QUEUE

ALL_QUEUES: tuple[str, ...] = (INBOUND_QUEUE,)
