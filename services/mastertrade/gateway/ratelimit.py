"""Per-key rate limits in Redis: a fixed window per caller, shared by every gateway replica.

A replica reserves a caller's requests from the window's counter in Redis a few at a time (one
server-side script: INCRBY, and EXPIRE on the window's first reservation; Redis drops the
counter after the window) and spends them in memory, so most requests make no round trip. The
counter counts reservations, and a reservation that passes the limit gets only what was left:
all replicas together never let more than `limit` requests of a caller through in a window.
What batching costs: requests one replica reserved but did not spend are lost to the caller when
the window ends, so with R replicas sharing a caller's traffic it may be refused up to
(R - 1) x (batch - 1) requests short of the limit. The batch is a twentieth of the limit, at
most 16; under 40 it is 1 (a round trip per request, exact with any number of replicas). Once
the counter has reached the limit the caller is refused for the rest of the window without
asking Redis again: within a window the counter never goes down. The remaining count a
decision gives (X-RateLimit-Remaining) is exact with one replica; with several it is as of this
replica's latest reservation.

Reservations are kept for at most MAX_CALLERS callers; past that, those of earlier windows are
dropped first, then all (dropping unspent ones only ever refuses sooner, never lets more in).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

PREFIX = "mastertrade:gateway:rate"
# ARGV[1]: seconds the counter lives; ARGV[2]: how many requests to reserve
RESERVE_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""
MAX_BATCH = 16
BATCH_SHARE = 20  # a batch is at most 1/BATCH_SHARE of the limit
MAX_CALLERS = 10_000


@dataclass(frozen=True)
class Decision:
    """Whether the request may go on, how many are left, and when the window ends."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


@dataclass
class Budget:
    """One caller's reservations on this replica for one window."""

    window: int  # the window's index: seconds since the epoch // window length
    spare: int = 0  # reserved here and not spent yet
    counted: int = 0  # the window's counter in Redis after this replica's latest reservation


def batch_for(limit: int) -> int:
    """How many requests to reserve in one round trip for callers of this limit."""
    return max(1, min(MAX_BATCH, limit // BATCH_SHARE))


class RateLimiter:
    """At most `limit` requests per `window` seconds per caller, across every replica."""

    def __init__(self, client: aioredis.Redis, window: int, prefix: str = PREFIX) -> None:
        self.client = client
        self.window = window
        self.prefix = prefix
        self._reserve = client.register_script(RESERVE_SCRIPT)
        self._budgets: dict[str, Budget] = {}

    async def hit(self, caller: str, limit: int) -> Decision:
        now = time.time()
        window = int(now // self.window)
        retry_after = max(1, int((window + 1) * self.window - now + 0.999))
        budget = self._budget(caller, window)
        if budget.spare == 0 and budget.counted < limit:
            await self._reserve_more(caller, budget, limit)
        if budget.spare == 0:
            return Decision(False, limit, 0, retry_after)
        budget.spare -= 1
        remaining = max(0, limit - (budget.counted - budget.spare))
        return Decision(True, limit, remaining, retry_after)

    async def _reserve_more(self, caller: str, budget: Budget, limit: int) -> None:
        batch = batch_for(limit)
        key = f"{self.prefix}:{caller}:{budget.window}"
        counted = int(await self._reserve(keys=[key], args=[self.window + 1, batch]))
        # the part of this batch still under the limit (the rest was never anyone's)
        budget.spare += max(0, min(batch, limit - (counted - batch)))
        budget.counted = max(budget.counted, counted)

    def _budget(self, caller: str, window: int) -> Budget:
        budget = self._budgets.get(caller)
        if budget is not None and budget.window == window:
            return budget
        if budget is None and len(self._budgets) >= MAX_CALLERS:
            self._forget(window)
        budget = self._budgets[caller] = Budget(window)
        return budget

    def _forget(self, window: int) -> None:
        """Room for another caller: drop earlier windows' budgets, or every one if none is."""
        current = {name: b for name, b in self._budgets.items() if b.window == window}
        self._budgets = current if len(current) < MAX_CALLERS else {}
