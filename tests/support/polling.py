"""Waiting in end-to-end tests for what a running Herald does by itself (a validation, a push, a figure)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


async def until(
    check: Callable[[], Awaitable[Any]], seconds: float = 30, what: str = "result", *, every: float = 0.2
) -> Any:
    """``check``'s first truthy answer, asked every ``every`` seconds; the test fails after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"no {what} within {seconds:g} s"
        await asyncio.sleep(every)
