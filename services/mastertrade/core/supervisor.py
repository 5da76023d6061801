"""Keeps one dependency connected: opens it with backoff, watches it, reports its state.

A service starts whether or not its dependencies are up. The supervisor's background task opens
the connector, retrying with exponential backoff (0.2 s doubling up to RECONNECT_MAX_BACKOFF)
while the server is late; once open, it pings it periodically so the `mastertrade_dependency_up`
gauge and the logs follow outages and recoveries. /health asks `check()` for a live answer.

Its bounds are `asyncio.timeout`, not `asyncio.wait_for`: on Python 3.11, `wait_for` returns
the result of an operation that ends in the same loop turn as a cancellation, and drops the
cancellation, so a watch stopped at that moment went on pinging and its service never shut down.
"""

from __future__ import annotations

import asyncio
import logging

from mastertrade.core.background import stop_task
from mastertrade.core.connections import Connector
from mastertrade.core.metrics import ServiceMetrics

logger = logging.getLogger("mastertrade.dependencies")

INITIAL_BACKOFF = 0.2


def next_backoff(current: float, ceiling: float) -> float:
    """The pause after `current`: doubled, never above `ceiling`."""
    return min(current * 2, ceiling)


class DependencySupervisor:
    """Background opening, watching and closing of one connector."""

    def __init__(
        self,
        connector: Connector,
        metrics: ServiceMetrics,
        timeout: float,
        max_backoff: float,
    ) -> None:
        self.connector = connector
        self.metrics = metrics
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.watch_interval = min(5.0, max_backoff)
        self.opened = False
        self.up = False
        self.first_attempt = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return str(self.connector.dependency)

    def start(self) -> None:
        self.metrics.set_dependency(self.name, up=False)
        self._task = asyncio.create_task(self._run(), name=f"supervise-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            # a watch that does not end (a client that swallowed the cancellation) is left
            # behind, not waited for: a stop that never returns would hang the whole shutdown
            await stop_task(task, timeout=self.timeout)
        if self.opened:
            try:
                await self.connector.close()
            except Exception as error:
                logger.warning("closing %s failed: %s", self.name, error)
        self.opened = False
        self._record(up=False, reason="stopped")

    async def check(self) -> bool:
        """Ping now (bounded by the timeout) and record the answer."""
        if not self.opened:
            return False
        try:
            async with asyncio.timeout(self.timeout):
                await self.connector.ping()
        except Exception as error:
            self._record(up=False, reason=_describe(error))
            return False
        self._record(up=True)
        return True

    async def _run(self) -> None:
        await self._open_with_backoff()
        while True:
            await asyncio.sleep(self.watch_interval)
            await self.check()

    async def _open_with_backoff(self) -> None:
        backoff = INITIAL_BACKOFF
        attempt = 0
        while not self.opened:
            attempt += 1
            try:
                async with asyncio.timeout(self.timeout * 2):
                    await self.connector.open()
            except Exception as error:
                self.first_attempt.set()
                logger.warning(
                    "%s not reachable (attempt %d), retrying in %.1fs: %s",
                    self.name,
                    attempt,
                    backoff,
                    _describe(error),
                    extra={"fields": {"dependency": self.name, "attempt": attempt}},
                )
                await asyncio.sleep(backoff)
                backoff = next_backoff(backoff, self.max_backoff)
                continue
            self.opened = True
            self._record(up=True)
            self.first_attempt.set()

    def _record(self, up: bool, reason: str = "") -> None:
        if up != self.up:
            if up:
                logger.info("%s is up", self.name, extra={"fields": {"dependency": self.name}})
            elif self.opened:
                logger.warning(
                    "%s is down: %s",
                    self.name,
                    reason,
                    extra={"fields": {"dependency": self.name}},
                )
        self.up = up
        self.metrics.set_dependency(self.name, up=up)


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
