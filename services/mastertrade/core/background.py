"""Background tasks tied to a service app's lifespan (after its connections are opened).

`add_background(app, start)` wraps the app's lifespan: once the runtime started, `start()` runs
and returns the tasks to run; at shutdown they are cancelled and awaited before the connections
close.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

Starter = Callable[[], Awaitable[list[asyncio.Task[None]]]]


def add_background(app: FastAPI, start: Starter) -> None:
    """Run `start` after the app's own start-up; cancel its tasks before its shutdown."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[None]:
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

    app.router.lifespan_context = lifespan
