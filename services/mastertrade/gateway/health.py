"""The services' health as the gateway lists it: one round of health checks shared by callers.

`/api/v1/health` and `/api/v1/services` ask every service behind the gateway for its health, so
each call costs a dozen upstream requests. They are not rate limited (the monitoring UI polls
them anonymously, beside its reads), so a listing is kept for HEALTH_FRESH_SECONDS and shared:
callers within that time get it as it was taken, and callers while a round is under way wait
for that round instead of starting their own. However many callers ask, each gateway replica
checks each service at most once per HEALTH_FRESH_SECONDS.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

HEALTH_FRESH_SECONDS = 2.0
"""How long a round of health checks answers the listings (Kubernetes probes every 10 s)."""

Listing = dict[str, dict[str, Any]]
"""Each service's health, by service name."""


class SharedHealth:
    """The latest round of health checks, fresh for `fresh` seconds, and the one under way."""

    def __init__(
        self, fresh: float = HEALTH_FRESH_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.fresh, self.clock = fresh, clock
        self._listing: Listing | None = None
        self._taken_at = 0.0
        self._round: asyncio.Future[Listing] | None = None

    async def get(self, check: Callable[[], Awaitable[Listing]]) -> Listing:
        """The listing taken within `fresh` seconds, else the one `check` takes now (or that
        the round another caller started is taking)."""
        if self._listing is not None and self.clock() - self._taken_at < self.fresh:
            return self._listing
        # a round of another event loop (one that closed with it pending) is not this loop's
        if self._round is None or self._round.get_loop() is not asyncio.get_running_loop():
            self._round = asyncio.ensure_future(self._take(check))
        # a caller that goes away (its client disconnected) leaves the round to the others
        return await asyncio.shield(self._round)

    async def _take(self, check: Callable[[], Awaitable[Listing]]) -> Listing:
        started = self.clock()
        try:
            listing = await check()
        finally:
            self._round = None
        self._listing, self._taken_at = listing, started
        return listing
