"""A bounded Redis cache of answered pages: a TTL, a number of entries and a number of bytes.

Entries are whole JSON bodies under content-addressed keys. A sorted set orders them by age and
a hash holds their sizes, so that one Lua script (atomic on the server, shared by every replica)
stores an entry, drops expired ones from the books and evicts the oldest until both bounds hold.
An entry larger than `max_entry_bytes` is not cached at all. The cache only saves work: with
Redis away (no client, or a command that fails) every page is a miss and is served from
PostgreSQL, never refused.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

logger = logging.getLogger("mastertrade.data_api.cache")

PREFIX = "mastertrade:data_api:cache"

# KEYS: index, sizes, total, entry. ARGV: value, ttl, now, max_entries, max_bytes.
STORE_SCRIPT = """
local function forget(key)
  local size = redis.call('HGET', KEYS[2], key)
  if size then redis.call('DECRBY', KEYS[3], size) end
  redis.call('HDEL', KEYS[2], key)
  redis.call('ZREM', KEYS[1], key)
end
local now, ttl = tonumber(ARGV[3]), tonumber(ARGV[2])
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - ttl)) do
  forget(key)
end
forget(KEYS[4])
redis.call('SET', KEYS[4], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[1], now, KEYS[4])
redis.call('HSET', KEYS[2], KEYS[4], #ARGV[1])
local total = redis.call('INCRBY', KEYS[3], #ARGV[1])
while redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[4]) or total > tonumber(ARGV[5]) do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  if not oldest then break end
  forget(oldest)
  redis.call('DEL', oldest)
  total = tonumber(redis.call('GET', KEYS[3]) or '0')
end
return total
"""


@dataclass(frozen=True)
class CacheLimits:
    """TTL in seconds (0 turns the cache off) and the bounds of what it may hold."""

    ttl: int
    max_entries: int
    max_bytes: int
    max_entry_bytes: int


class PageCache:
    """get/put of whole response bodies within `limits`, under keys starting with `prefix`;
    `client` None: Redis is away, nothing is cached."""

    def __init__(
        self, client: aioredis.Redis | None, limits: CacheLimits, prefix: str = PREFIX
    ) -> None:
        self.client = client
        self.limits = limits
        self.prefix = prefix
        self.index_key = f"{prefix}:index"
        self.sizes_key = f"{prefix}:sizes"
        self.total_key = f"{prefix}:bytes"

    def key(self, *parts: object) -> str:
        """A fixed-length key for any request description."""
        digest = hashlib.sha256(repr(parts).encode()).hexdigest()[:32]
        return f"{self.prefix}:entry:{digest}"

    @property
    def enabled(self) -> bool:
        return self.limits.ttl > 0 and self.limits.max_entries > 0

    async def get(self, key: str) -> bytes | None:
        """The cached body, or None: not cached, the cache off, or Redis away."""
        if not self.enabled or self.client is None:
            return None
        try:
            found = await self.client.get(key)
        except (RedisError, OSError) as error:
            logger.warning("page cache unreadable (%s): serving from the database", error)
            return None
        return found if isinstance(found, bytes) else None

    async def put(self, key: str, body: bytes) -> bool:
        """Store `body` unless it is too large or Redis is away; False when it was not stored."""
        if not self.enabled or self.client is None or len(body) > self.limits.max_entry_bytes:
            return False
        limits = self.limits
        try:
            await self.client.eval(
                STORE_SCRIPT, 4, self.index_key, self.sizes_key, self.total_key, key,
                body, limits.ttl, time.time(), limits.max_entries, limits.max_bytes,
            )  # fmt: skip
        except (RedisError, OSError) as error:
            logger.warning("page not cached (%s): Redis is away", error)
            return False
        return True
