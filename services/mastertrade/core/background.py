"""Background tasks tied to a service app's lifespan (after its connections are opened).

`add_background(app, start, cleanup)` wraps the app's lifespan: once the runtime started,
`start()` runs and returns the tasks to run; at shutdown they are cancelled and awaited before the
connections close, and `cleanup()` runs last, after the consumers drained (so clients that
message handlers use stay open until no handler is left).

A cancellation can be swallowed on its way through a client library (one that turns it into
an error of its own, which a loop then logs and outlives): such a task would run for ever and
hold the shutdown. So a task still running a second after its cancellation is cancelled again,
and one still running after STOP_SECONDS is left behind with a warning (its connections close
next, which ends it). `stop_task` does this for any task a service runs, in or out of this
lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

Starter = Callable[[], Awaitable[list[asyncio.Task[None]]]]
Cleanup = Callable[[], Awaitable[None]]

STOP_SECONDS = 5.0
RECANCEL_SECONDS = 1.0

logger = logging.getLogger("mastertrade.background")


async def _nothing() -> None:
    return None


def add_background(app: FastAPI, start: Starter, cleanup: Cleanup = _nothing) -> None:
    """Run `start` after the app's own start-up; cancel its tasks before its shutdown."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
        try:
            async with inner(application):
                tasks = await start()
                try:
                    yield
                finally:
                    await asyncio.gather(*(stop_task(task) for task in tasks))
        finally:
            await cleanup()

    app.router.lifespan_context = lifespan


async def stop_task(task: asyncio.Task[Any], timeout: float = STOP_SECONDS) -> None:
    """Cancel `task` and wait for it, cancelling it again every RECANCEL_SECONDS while it runs
    on, for at most `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not task.done():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            logger.warning("background task %s still running %.0fs after its cancellation; "
                           "shutting down without it", task.get_name(), timeout)  # fmt: skip
            return
        task.cancel()
        await asyncio.wait({task}, timeout=min(RECANCEL_SECONDS, left))
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()  # retrieved, so asyncio does not report it as never retrieved
