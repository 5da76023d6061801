"""One replica at a time does a duty that must not run twice; the others stand by to take over.

Market data collection (two collectors would write each simulated minute with different prices
and publish every Binance event twice) and the live strategies' candle decisions (two pods
deciding the candles of one symbol at once can send its signals out of candle order) each run
on one replica. It holds a PostgreSQL session advisory lock, one key per duty, on a connection
it keeps for the purpose; the database lets the lock go with that connection (a replica that
dies, or is cut off from it), and a standing-by replica, asking every STANDBY_SECONDS, takes it
then. The holder asks its connection every CHECK_SECONDS whether it is still there, and stops
the duty the moment it is not: by then the database may have given the lock to another replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

logger = logging.getLogger("mastertrade.leadership")

STANDBY_SECONDS = 5.0
CHECK_SECONDS = 2.0


class Leadership:
    """Runs `lead` while this replica holds `lock` (an advisory lock key); stands by otherwise.
    `duty` names what the lock is for, in the logs."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        lead: Callable[[], Coroutine[Any, Any, None]],
        lock: int,
        duty: str,
    ) -> None:
        self.pool, self.lead, self.lock, self.duty = pool, lead, lock, duty
        self.role = "starting"  # leader, standby, or waiting for the database

    async def run(self) -> None:
        """Take the lock when it is free and lead while it is held, until cancelled."""
        while True:
            try:
                await self._term()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database is away: ask again later
                self.role = "waiting for the database"
                logger.warning("%s: %r; asking for its lock again in %.0fs", self.duty, error,
                               STANDBY_SECONDS)  # fmt: skip
            await asyncio.sleep(STANDBY_SECONDS)

    async def _term(self) -> None:
        """One attempt at the lock, and the duty it allows, on a connection of its own."""
        async with self.pool().acquire() as connection:
            if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", self.lock):
                if self.role != "standby":
                    logger.info("%s: another replica holds its lock; standing by", self.duty)
                self.role = "standby"
                return
            self.role = "leader"
            logger.info("%s: this replica holds its lock and takes it on", self.duty)
            try:
                await self._lead_while_held(connection)
            finally:
                self.role = "starting"
                # the pool would reset the session anyway; said here so the intent is plain
                await asyncio.shield(self._unlock(connection))

    async def _lead_while_held(self, connection: asyncpg.pool.PoolConnectionProxy) -> None:
        leading = asyncio.create_task(self.lead(), name=f"leading: {self.duty}")
        try:
            while not leading.done():
                await asyncio.wait({leading}, timeout=CHECK_SECONDS)
                if not leading.done():
                    await asyncio.wait_for(connection.fetchval("SELECT 1"), CHECK_SECONDS)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            logger.warning("%s: the connection holding its lock failed (%r): stopping, another "
                           "replica may hold the lock now", self.duty, error)  # fmt: skip
            raise
        finally:
            leading.cancel()
            await asyncio.gather(leading, return_exceptions=True)
        if not leading.cancelled() and (failure := leading.exception()) is not None:
            logger.warning("%s stopped: %r; its lock is let go and asked for again",
                           self.duty, failure)  # fmt: skip

    async def _unlock(self, connection: asyncpg.pool.PoolConnectionProxy) -> None:
        try:
            await connection.execute("SELECT pg_advisory_unlock($1)", self.lock)
        except Exception as error:  # the connection is gone, and the lock with it
            logger.debug("unlocking %s's lock: %r", self.duty, error)
