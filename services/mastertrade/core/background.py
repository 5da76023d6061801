"""Background tasks tied to a service app's lifespan (after its connections are opened).

`add_background(app, start, cleanup)` wraps the app's lifespan: once the runtime started,
`start()` runs and returns the tasks to run; at shutdown they are cancelled and awaited before the
connections close, and `cleanup()` runs last, after the consumers drained (so clients that
message handlers use stay open until no handler is left).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

Starter = Callable[[], Awaitable[list[asyncio.Task[None]]]]
Cleanup = Callable[[], Awaitable[None]]


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
                    for task in tasks:
                        task.cancel()
                    for task in tasks:
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        finally:
            await cleanup()

    app.router.lifespan_context = lifespan
