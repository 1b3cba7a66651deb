"""Waiting on a call: every wait is raced against the events that make it pointless (a
hang-up, the call ending), so nothing the agent awaits can outlive the people it is for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any


async def until(
    awaitable: Awaitable[Any],
    *stops: asyncio.Event,
    timeout: float | None = None,  # noqa: ASYNC109 - the limit is part of the race
) -> bool:
    """Await ``awaitable`` unless one of ``stops`` is set first or ``timeout`` seconds
    pass; True when it completed. Its own exception propagates; otherwise it is cancelled."""
    work = asyncio.ensure_future(awaitable)
    waiters = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        await asyncio.wait({work, *waiters}, timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        for task in (work, *waiters):
            if not task.done():
                task.cancel()
        for task in (work, *waiters):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if work.done() and not work.cancelled():
        work.result()  # re-raises the awaited work's own error
        return True
    return False
