"""The dependency supervisor stops when asked, whatever its watch is doing at that moment."""

from __future__ import annotations

import asyncio

from mastertrade.core.metrics import ServiceMetrics
from mastertrade.core.supervisor import DependencySupervisor
from mastertrade_model.values import Dependency


class HeldPing:
    """A connector whose pings wait until the test lets one finish."""

    dependency = Dependency.DATABASE

    def __init__(self) -> None:
        self.pinging = asyncio.Event()
        self.release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False

    async def open(self) -> None:
        pass

    async def ping(self) -> None:
        self.pinging.set()
        await self.release

    async def close(self) -> None:
        self.closed = True


async def test_stop_ends_the_watch_even_when_a_ping_finishes_as_it_is_cancelled() -> None:
    """The ping finishes in the very loop turn in which stop() cancels the watch: Python 3.11's
    `asyncio.wait_for` then returns the ping's result and drops the cancellation, and a watch
    relying on it pinged on for ever while its service's shutdown waited (seen in CI, under
    load, as a test teardown that never ended)."""
    connector = HeldPing()
    supervisor = DependencySupervisor(connector, ServiceMetrics("test", "0"), 1.0, 0.01)
    supervisor.start()
    await asyncio.wait_for(connector.pinging.wait(), 5)  # the watch is inside a ping
    connector.release.set_result(None)  # the ping ends in the next turn ...
    stopping = asyncio.create_task(supervisor.stop())  # ... in which the watch is cancelled
    done, _ = await asyncio.wait({stopping}, timeout=5)  # (not wait_for: it would cancel stop)
    if not done:
        stopping.cancel()
    assert done, "stop() still waiting for the watch after 5 s"
    assert connector.closed and not supervisor.up


class DeafPing(HeldPing):
    """A connector whose first ping swallows its task's cancellation, as a faulty client might
    (once only, so the event loop's own cleanup can end the watch after the test)."""

    swallowed = False

    async def ping(self) -> None:
        self.pinging.set()
        if self.swallowed:
            await asyncio.sleep(3600)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.swallowed = True


async def test_stop_closes_the_connection_even_when_the_watch_will_not_end() -> None:
    connector = DeafPing()
    supervisor = DependencySupervisor(connector, ServiceMetrics("test", "0"), 0.2, 0.01)
    supervisor.start()
    await asyncio.wait_for(connector.pinging.wait(), 5)
    stopping = asyncio.create_task(supervisor.stop())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    if not done:
        stopping.cancel()
    assert done, "stop() waited on a watch that ignores its cancellation"
    assert connector.closed and not supervisor.up
