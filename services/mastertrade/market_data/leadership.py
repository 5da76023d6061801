"""One market data replica collects at a time; the others stand by, ready to take over.

Replicas (a scaled Deployment, or the old and the new pod of a rolling update) would otherwise
each run the whole feed: the simulated market twice, its minutes written by both with different
prices, and every Binance event published once per replica. The collecting replica holds a
PostgreSQL session advisory lock (COLLECTOR_LOCK) on a connection it keeps for the purpose; the
database lets the lock go with that connection (a replica that dies, or is cut off from it), and
a standing-by replica, asking every STANDBY_SECONDS, takes it then. The holder asks its
connection every CHECK_SECONDS whether it is still there, and stops collecting the moment it is
not: by then the database may have given the lock to another replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

logger = logging.getLogger("mastertrade.market_data.leadership")

COLLECTOR_LOCK = 0x6D74_6D64_636F_6C6C  # "mtmdcoll": the market data collector's lock
STANDBY_SECONDS = 5.0
CHECK_SECONDS = 2.0


class Leadership:
    """Runs `collect` while this replica holds the collector lock; stands by otherwise."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        collect: Callable[[], Coroutine[Any, Any, None]],
    ) -> None:
        self.pool, self.collect = pool, collect
        self.role = "starting"  # leader, standby, or waiting for the database

    async def run(self) -> None:
        """Take the lock when it is free and collect while it is held, until cancelled."""
        while True:
            try:
                await self._term()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: ask again later
                self.role = "waiting for the database"
                logger.warning("market data leadership: %r; asking again in %.0fs", error,
                               STANDBY_SECONDS)  # fmt: skip
            await asyncio.sleep(STANDBY_SECONDS)

    async def _term(self) -> None:
        """One attempt at the lock, and the collection it allows, on a connection of its own."""
        async with self.pool().acquire() as connection:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", COLLECTOR_LOCK):
                if self.role != "standby":
                    logger.info("another replica collects market data; standing by")
                self.role = "standby"
                return
            self.role = "leader"
            logger.info("this replica collects market data (it holds the collector lock)")
            try:
                await self._collect_while_held(connection)
            finally:
                self.role = "starting"
                # the pool would reset the session anyway; said here so the intent is plain
                await asyncio.shield(_unlock(connection))

    async def _collect_while_held(self, connection: asyncpg.pool.PoolConnectionProxy) -> None:
        collecting = asyncio.create_task(self.collect(), name="market-data-collect")
        try:
            while not collecting.done():
                await asyncio.wait({collecting}, timeout=CHECK_SECONDS)
                if not collecting.done():
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), CHECK_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("the connection holding the collector lock failed (%r): stopping "
                           "collection, another replica may have the lock now", error)  # fmt: skip
            raise
        finally:
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)


async def _unlock(connection: asyncpg.pool.PoolConnectionProxy) -> None:
    try:
        await connection.execute("SELECT pg_advisory_unlock($1)", COLLECTOR_LOCK)
    except Exception as error:  # the connection is gone, and the lock with it
        logger.debug("unlocking the collector lock: %r", error)
