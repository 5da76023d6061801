"""Killing the order executor at the worst moment, made certain rather than hoped for.

The executor finishes an order within a few milliseconds, so a kill at a random moment finds it
idle most times (seen: 19 of 20 kills left no order unfinished). `kill_inside_a_fill` holds the
cash balance's row lock (every paper batch's write must take it) and kills the executor once
one of its writes, which records the orders with their fills, waits for that lock: nothing of it
committed, its messages delivered and not acknowledged. Whatever happens next must lose and
double nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import asyncpg

LOCK_CASH = "SELECT 1 FROM balances WHERE environment = 'paper' AND asset = 'USDT' FOR UPDATE"
# Another backend in a statement that writes order rows (the table's write lock is taken when
# the statement starts) and now waits for a row lock.
RECORDED_AND_WAITING = """
SELECT count(*) FROM pg_stat_activity AS a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock'
  AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = a.pid AND l.granted
                AND l.relation = 'orders'::regclass AND l.mode = 'RowExclusiveLock')
"""


async def kill_inside_a_fill(
    url: str, kill: Callable[[], Awaitable[None]], timeout: float = 30.0
) -> None:
    """Hold the paper USDT balance, wait until a batch's write (orders and fills) waits for it,
    call `kill` (which must return once the executor is dead), then let go."""
    holder = await asyncpg.connect(url)
    try:
        async with holder.transaction():
            assert await holder.fetchval(LOCK_CASH), "the executor opened no paper USDT balance"
            deadline = time.monotonic() + timeout
            while not await holder.fetchval(RECORDED_AND_WAITING):
                assert time.monotonic() < deadline, "no fill came to wait for the cash balance"
                await asyncio.sleep(0.01)
            await kill()
    finally:
        await holder.close()
