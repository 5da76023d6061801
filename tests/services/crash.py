"""Killing the order executor at the worst moments, made certain rather than hoped for.

The executor finishes an order within a few milliseconds, so a kill at a random moment finds it
idle most times (seen: 19 of 20 kills left no order unfinished). `kill_inside_a_fill` holds the
cash balance's row lock (every paper batch's write must take it) and kills the executor once
one of its writes, which records the orders with their fills, waits for that lock; its messages
are delivered and not acknowledged. Then, as asked:

- `Landed.BEFORE_COMMIT`: the write's backend is ended before the lock is let go, so nothing
  of it commits (checked: the balance's version, which every paper write bumps, is unchanged),
  as with a kill a moment before the commit;
- `Landed.AFTER_COMMIT`: the lock is let go and the write commits on its own, its client dead
  (PostgreSQL runs a statement to its end unless it has to send something, with its default
  client_connection_check_interval of 0; checked: the version moved on), as with a kill
  between the commit and the acknowledgement.

Whatever happens next must lose and double nothing.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable
from enum import Enum

import asyncpg

LOCK_CASH = "SELECT 1 FROM balances WHERE environment = 'paper' AND asset = 'USDT' FOR UPDATE"
# The other backends in a statement that writes order rows (the table's write lock is taken
# when the statement starts) and now wait for a row lock.
RECORDING_AND_WAITING = """
SELECT COALESCE(array_agg(a.pid), '{}') FROM pg_stat_activity AS a
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock'
  AND EXISTS (SELECT 1 FROM pg_locks AS l WHERE l.pid = a.pid AND l.granted
                AND l.relation = 'orders'::regclass AND l.mode = 'RowExclusiveLock')
"""
# What every paper write bumps, gated on the version it read (the write of orders and fills)
VERSION = "SELECT version FROM balances WHERE environment = 'paper' AND asset = 'USDT'"
ALIVE = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])"


def kill_moments() -> random.Random:
    """The random source of the kills' random moments: a new seed each run, printed (shown
    with a failure), and `KILL_SEED=<seed>` in the environment runs one again."""
    seed = int(os.environ.get("KILL_SEED") or int.from_bytes(os.urandom(4), "big"))
    print(f"kill moments: KILL_SEED={seed}")
    return random.Random(seed)


class Landed(Enum):
    """Where a kill inside a fill lands: before its write commits, or after, unacknowledged."""

    BEFORE_COMMIT = "before the commit"
    AFTER_COMMIT = "after the commit, before the acknowledgement"


async def kill_inside_a_fill(
    url: str, kill: Callable[[], Awaitable[None]], landed: Landed, timeout: float = 30.0
) -> None:
    """Hold the paper USDT balance, wait until a batch's write (orders and fills) waits for it,
    call `kill` (which must return once the executor is dead), end the write or let it commit
    (`landed`), then let go; checks that it landed there."""
    holder = await asyncpg.connect(url)
    try:
        async with holder.transaction():
            assert await holder.fetchval(LOCK_CASH), "the executor opened no paper USDT balance"
            deadline = time.monotonic() + timeout
            while not (writers := await holder.fetchval(RECORDING_AND_WAITING)):
                assert time.monotonic() < deadline, "no fill came to wait for the cash balance"
                await asyncio.sleep(0.01)
            before = await holder.fetchval(VERSION)
            await kill()
            if landed is Landed.BEFORE_COMMIT:
                await holder.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) "
                                     "AS pid", writers)  # fmt: skip
        await _check_landed(holder, writers, before, landed, deadline)
    finally:
        await holder.close()


async def _check_landed(
    holder: asyncpg.Connection, writers: list[int], before: int, landed: Landed, deadline: float
) -> None:
    """Wait until the killed executor's waiting write is over, then check what it left."""
    while await holder.fetchval(ALIVE, writers):
        assert time.monotonic() < deadline, "the killed executor's write never ended"
        await asyncio.sleep(0.01)
    after = await holder.fetchval(VERSION)
    if landed is Landed.BEFORE_COMMIT:
        assert after == before, "the write ended before its commit changed the books"
    else:
        assert after == before + 1, "the write let go after the kill committed nothing"
