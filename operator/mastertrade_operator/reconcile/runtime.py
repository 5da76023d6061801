"""What every handler shares: the API client, the chart renderer, metrics, timing settings and
one lock per MasterTradeDeployment, so that reconciles of one resource never overlap and a burst
of child events collapses into one reconcile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mastertrade_operator.kube import Kube
from mastertrade_operator.metrics import Metrics, build_metrics
from mastertrade_operator.render import Renderer


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
    """The credentials Secret's data last applied, by resource uid."""
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _queued: set[str] = field(default_factory=set)

    async def exclusive(
        self, key: str, work: Callable[[], Awaitable[None]], *, coalesce: bool = False
    ) -> bool:
        """Run `work` alone for `key`; with `coalesce`, skip it if a run is already queued
        (that run starts later and sees the newer state). True when `work` ran."""
        if coalesce and key in self._queued:
            return False
        self._queued.add(key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            self._queued.discard(key)
            await work()
        return True

    def forget(self, key: str) -> None:
        """Drop the lock of a deleted resource."""
        self._locks.pop(key, None)
        self._queued.discard(key)
        self.statuses.pop(key, None)
        self.credentials.pop(key, None)
