"""What every handler shares: the API client, the chart renderer, metrics, timing settings and
one lock per MasterTradeDeployment, so that reconciles of one resource never overlap and a burst
of child events collapses into one reconcile; which resources still wait (a phase, or the API server
after a failure) and, after failures, how long child events are ignored (an exponential
backoff, so an API server that is down is not hammered)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import Kube
from mastertrade_operator.metrics import Metrics, build_metrics
from mastertrade_operator.reconcile.applying import Memory
from mastertrade_operator.render import Renderer

MAX_BACKOFF = 60.0
"""Seconds at most between attempts while the API server keeps failing."""


@dataclass(frozen=True)
class Timing:
    """Seconds between retries while a phase waits, and between safety-net resyncs."""

    phase_retry: float = 10.0
    resync: float = 300.0


@dataclass
class Runtime:
    kube: Kube
    renderer: Renderer
    timing: Timing = field(default_factory=Timing)
    metrics: Metrics = field(default_factory=build_metrics)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The status last written, by resource uid (newer than a body kopf may still hold)."""
    credentials: dict[str, dict[str, str]] = field(default_factory=dict)
    """The credentials Secret's data last seen, by resource uid."""
    memories: dict[str, Memory] = field(default_factory=dict)
    """What earlier reconciles found (confirmed drifts, refusals), by resource uid."""
    unsettled: set[str] = field(default_factory=set)
    """Resources whose last reconcile waited on a phase or failed: the progress loop
    reconciles them again every `phase_retry` seconds."""
    _failures: dict[str, int] = field(default_factory=dict)
    _not_before: dict[str, float] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _queued: set[str] = field(default_factory=set)

    def memory(self, key: str) -> Memory:
        return self.memories.setdefault(key, Memory())

    def settle(self, key: str, *, waiting: bool, failed: bool) -> None:
        """Record how a reconcile ended: failures back off exponentially, and only a reconcile
        that went through every phase ends the backoff (one that stopped at a phase waiting
        may not have reached what failed: the next failure backs off further)."""
        if failed:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = min(self.timing.phase_retry * 2 ** (failures - 1), MAX_BACKOFF)
            self._not_before[key] = time.monotonic() + delay
        elif not waiting:
            self._failures.pop(key, None)
            self._not_before.pop(key, None)
        if waiting or failed:
            self.unsettled.add(key)
        else:
            self.unsettled.discard(key)

    def backing_off(self, key: str) -> bool:
        """True while the last failure's backoff lasts."""
        return time.monotonic() < self._not_before.get(key, 0.0)

    async def exclusive(
        self,
        key: str,
        work: Callable[[], Awaitable[None]],
        *,
        coalesce: bool = False,
        after_backoff: bool = False,
    ) -> bool:
        """Run `work` alone for `key`; with `coalesce`, skip it if a run is already queued
        (that run starts later and sees the newer state); with `after_backoff`, skip it if,
        once its turn comes, a failure's backoff lasts (the run it waited for may have just
        failed). True when `work` ran."""
        if coalesce and key in self._queued:
            return False
        self._queued.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._queued.discard(key)
            if after_backoff and self.backing_off(key):
                return False
            await work()
        return True

    def forget(self, key: str) -> None:
        """Drop the lock of a deleted resource."""
        self._locks.pop(key, None)
        self._queued.discard(key)
        self.statuses.pop(key, None)
        self.credentials.pop(key, None)
        self.memories.pop(key, None)
        self.unsettled.discard(key)
        self._failures.pop(key, None)
        self._not_before.pop(key, None)
