"""Per-key rate limits in Redis: a fixed window per caller, shared by every gateway replica.

One round trip per request (a server-side script: INCR, and EXPIRE on the window's first
request): the first request of a window creates its counter, which Redis drops after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

PREFIX = "mastertrade:gateway:rate"
COUNT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""


@dataclass(frozen=True)
class Decision:
    """Whether the request may go on, how many are left, and when the window ends."""

    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    """At most `limit` requests per `window` seconds per caller."""

    def __init__(self, client: aioredis.Redis, window: int, prefix: str = PREFIX) -> None:
        self.client = client
        self.window = window
        self.prefix = prefix
        self._count = client.register_script(COUNT_SCRIPT)

    async def hit(self, caller: str, limit: int) -> Decision:
        now = time.time()
        window_index = int(now // self.window)
        key = f"{self.prefix}:{caller}:{window_index}"
        count = int(await self._count(keys=[key], args=[self.window + 1]))
        retry_after = max(1, int((window_index + 1) * self.window - now + 0.999))
        return Decision(count <= limit, limit, max(0, limit - count), retry_after)
