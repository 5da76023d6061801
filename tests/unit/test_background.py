"""A service's background tasks stop at shutdown, even one whose first cancellation was
swallowed on its way (a client library turning it into an error the loop logs and outlives: a
CI run hung in the order executor's reconcile loop this way, after a RabbitMQ reconnect)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI

from mastertrade.core import background
from mastertrade.core.background import add_background


class SwallowingLoop:
    """A polling loop whose client turns the first cancellation into an error it logs."""

    def __init__(self) -> None:
        self.swallowed = 0
        self.rounds = 0
        self.errors: list[Exception] = []

    async def run(self) -> None:
        while True:  # every await of a round is in the client call, where the cancel lands
            try:
                await self.client_call()
            except Exception as error:  # the loop's own "log it, retry next round"
                self.errors.append(error)
            self.rounds += 1

    async def client_call(self) -> None:
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            if self.swallowed == 0:
                self.swallowed += 1
                raise RuntimeError("channel closed") from None
            raise


async def test_a_task_that_swallows_its_cancellation_does_not_hold_the_shutdown() -> None:
    loop = SwallowingLoop()
    cleaned: list[bool] = []
    tasks: list[asyncio.Task[None]] = []

    async def start() -> list[asyncio.Task[None]]:
        tasks.append(asyncio.create_task(loop.run()))
        return tasks

    async def cleanup() -> None:
        cleaned.append(True)

    app = FastAPI()
    add_background(app, start, cleanup)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    while loop.rounds < 2:
        await asyncio.sleep(0.01)
    # waited for without cancelling it: a cancellation from here would stop the task itself
    shutdown = asyncio.create_task(lifespan.__aexit__(None, None, None))
    await asyncio.wait({shutdown}, timeout=10)
    stopped = shutdown.done()
    shutdown.cancel()  # what a shutdown that hung for ever leaves, not to leak it past the test
    assert stopped, "the shutdown still waits for the task"
    assert [str(error) for error in loop.errors] == ["channel closed"]  # swallowed, yet stopped
    assert tasks[0].cancelled()
    assert cleaned == [True]


async def test_a_task_that_never_stops_is_left_behind_after_the_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "RECANCEL_SECONDS", 0.05)
    release = asyncio.Event()

    async def stubborn() -> None:  # swallows every cancellation until released
        while not release.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(background.stop_task(task, timeout=0.3), timeout=5)
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.done()
